"""Every HTTP route of the console; each domain adds its module's ROUTES here."""

from starlette.routing import BaseRoute

from console.web import auth_routes, entry_api, events_api, health, wecom_callback, wecom_login

ROUTES: list[BaseRoute] = [
    *health.ROUTES,
    *auth_routes.ROUTES,
    *wecom_login.ROUTES,
    *entry_api.ROUTES,
    *events_api.ROUTES,
    *wecom_callback.ROUTES,
]
