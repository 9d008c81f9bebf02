"""The Marketo Engage REST client (Lead Database, Activities, custom activities, bulk APIs).

Import from the modules (``shared.marketo.client``, ``shared.marketo.bulk_import``, ...): this
package imports nothing, so loading the client does not load the bulk APIs (cold start).
"""
