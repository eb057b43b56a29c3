"""moto's request dispatcher, with its backend look-up cached per host.

Why: moto's ``DomainDispatcherApplication`` finds each request's backend while holding one
lock for the whole server, and the look-up lists moto's package directory (an ``isdir`` per
service module, a few hundred) and then tries every backend's URL pattern. Every request of
every service queues on that lock: profiling the emulator under the fault matrix (py-spy)
found most of its busy samples waiting there. A host always maps to the same backend, so the
answer is looked up once per host.
"""

from __future__ import annotations

from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication


class CachedDispatcher(DomainDispatcherApplication):
    def __init__(self, create_app: Any) -> None:
        super().__init__(create_app)
        self._backends: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        # Called with self.lock held (get_application), so the cache needs no lock of its own.
        try:
            return self._backends[host]
        except KeyError:
            backend = self._backends[host] = super().get_backend_for_host(host)
            return backend
