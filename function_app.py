"""The Azure Functions app: registers the triggers in functions/. No I/O at import time."""

import azure.functions as func

from functions import (
    backfill,
    console,
    console_metrics,
    dynamics_sweep,
    dynamics_webhook,
    flow_step,
    marketo_change,
    marketo_poller,
    sync_log_retention,
    sync_worker,
)
from shared.redaction import install_log_redaction

# Every log record of the process, whatever logger makes it, is redacted (no secret, no email).
install_log_redaction()

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(dynamics_webhook.bp)
app.register_functions(marketo_change.bp)
app.register_functions(marketo_poller.bp)
app.register_functions(dynamics_sweep.bp)
app.register_functions(sync_worker.bp)
app.register_functions(flow_step.bp)
app.register_functions(backfill.bp)
app.register_functions(console.bp)
app.register_functions(console_metrics.bp)
app.register_functions(sync_log_retention.bp)
