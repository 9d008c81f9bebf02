"""Local stand-ins for Entra ID, Dataverse and Marketo, served over real HTTPS.

Not deployed (listed in .funcignore). See simulators/README.md.
"""
