"""Every HTTP route of the console; each domain adds its module's ROUTES here."""

from starlette.routing import BaseRoute

from console.web import auth_routes, health
from console.web import entry_api
from console.web import events_api, wecom_callback

ROUTES: list[BaseRoute] = [
    *health.ROUTES,
    *auth_routes.ROUTES,
    *entry_api.ROUTES,
    *events_api.ROUTES,
    *wecom_callback.ROUTES,
]
