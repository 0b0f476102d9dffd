"""Every HTTP route of the console; each domain adds its module's ROUTES here."""

from starlette.routing import BaseRoute

from console.web import auth_routes, health

ROUTES: list[BaseRoute] = [
    *health.ROUTES,
    *auth_routes.ROUTES,
]
