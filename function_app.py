"""Azure Functions entry point (Python v2 programming model, Durable Functions).

The Functions host imports this module and takes `app`. Orchestrators, activities and triggers
are registered here as blueprints as they are built; see ARCHITECTURE's data flow.
"""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
