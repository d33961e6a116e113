"""``GET /api/v1/info``: what a client needs before it logs in (version, STOMP addresses).

The ``buzon`` command asks it to find the STOMP port of the broker its ``--url`` names,
so that a broker on other ports than the defaults needs no second address.
"""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from buzon import __version__
from buzon.server.http.security import Ctx

router = APIRouter(tags=["broker"])


class BrokerInfo(BaseModel):
    version: str = Field(description="the broker's buzon version")
    stomp: list[str] = Field(
        description="STOMP listeners as URLs a client can connect to, plain first:"
        " stomp://HOST:PORT, stomp+ssl://HOST:PORT"
    )


@router.get("/info", summary="Version and STOMP addresses (no authentication)")
async def info(ctx: Ctx, request: Request) -> BrokerInfo:
    """The host in each URL is the address the broker listens on; when that is every
    interface (``0.0.0.0`` or ``::``), it is the host this request was sent to. Behind
    port forwarding the ports are the broker's own, which clients may not see."""
    host = ctx.settings.host
    if _every_interface(host):
        host = request.url.hostname or "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return BrokerInfo(
        version=__version__,
        stomp=[f"{scheme}://{shown}:{port}" for scheme, port in ctx.stomp_ports.items()],
    )


def _every_interface(host: str) -> bool:
    """Whether ``host`` is 0.0.0.0 or ``::``: an address to listen on, not to connect to."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:  # a host name
        return False
