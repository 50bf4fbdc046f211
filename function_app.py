"""Azure Functions entry point (Python v2 programming model, Durable Functions).

The Functions host imports this module and takes `app`; it only registers blueprints (after
configuring telemetry: exporter chosen by settings, restyle/telemetry.py).
"""

import azure.durable_functions as df
import azure.functions as func

from activities.blueprint import bp as activities
from api.blueprint import bp as api
from orchestrators.many_models import bp as many_models
from orchestrators.remove_work import bp as remove_work
from orchestrators.stylize_video import bp as stylize_video
from restyle.settings import get_settings
from restyle.telemetry import configure_telemetry

configure_telemetry(get_settings())

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(stylize_video)
app.register_functions(many_models)
app.register_functions(remove_work)
app.register_functions(activities)
app.register_functions(api)
