"""Calling CNI plugins as the CNI spec (1.0) defines: one exec per plugin.

A plugin is the binary named by the network configuration's ``type``, found
in ``cni_path``; it gets ``CNI_COMMAND`` / ``CNI_CONTAINERID`` / ``CNI_NETNS``
/ ``CNI_IFNAME`` / ``CNI_PATH`` in its environment and the network
configuration JSON on stdin, and answers a JSON result (ADD) or nothing
(DEL). A network configuration list (``plugins``) is run in order for ADD,
each plugin seeing the previous one's result as ``prevResult``, and in
reverse for DEL.

Building configurations is pure (``plugin_config``); only ``invoke`` and
the ``*_list`` functions execute anything.

Raises only ``CniError`` (a ``dockyard.errors.SystemError``), carrying the
plugin's error ``code`` and ``msg`` when it gave them.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard import errors

__all__ = ["CNI_VERSION", "CniError", "Invocation", "add_list", "delete_list", "invoke", "plugin_config"]

CNI_VERSION = "1.0.0"
DEFAULT_CNI_PATH = "/usr/lib/cni"


class CniError(errors.SystemError):
    """A plugin failed; ``code`` is the CNI error code (0 when it gave none)."""

    def __init__(self, message: str, *, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, kw_only=True, slots=True)
class Invocation:
    """Where a plugin acts: the container, its namespace file and interface name."""

    container_id: str
    netns: str
    ifname: str
    cni_path: str = DEFAULT_CNI_PATH


def plugin_config(network: Mapping[str, Any], plugin: Mapping[str, Any], *,
                  runtime_config: Mapping[str, Any] | None = None,
                  prev_result: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One plugin's stdin for a list: the list's name and version, the plugin's
    keys, the ``runtimeConfig`` entries for the capabilities it declares, and
    ``prevResult``."""
    config: dict[str, Any] = {"cniVersion": network.get("cniVersion", CNI_VERSION), "name": network["name"]}
    config.update({k: v for k, v in plugin.items() if k != "capabilities"})
    wanted = [name for name, on in (plugin.get("capabilities") or {}).items() if on]
    runtime = {name: runtime_config[name] for name in wanted if runtime_config and name in runtime_config}
    if runtime:
        config["runtimeConfig"] = runtime
    if prev_result is not None:
        config["prevResult"] = dict(prev_result)
    return config


async def invoke(command: str, config: Mapping[str, Any], where: Invocation) -> dict[str, Any]:
    """Run the plugin ``config["type"]`` with ``command`` (ADD, DEL, CHECK); its JSON result or {}."""
    plugin = str(config["type"])
    binary = os.path.join(where.cni_path, plugin)
    env = {
        "CNI_COMMAND": command, "CNI_CONTAINERID": where.container_id, "CNI_NETNS": where.netns,
        "CNI_IFNAME": where.ifname, "CNI_PATH": where.cni_path,
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    }
    try:
        proc = await asyncio.create_subprocess_exec(
            binary, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
    except OSError as err:
        raise CniError(f"cannot run CNI plugin {plugin}: {err}") from err
    stdout, stderr = await proc.communicate(json.dumps(config).encode())
    if proc.returncode != 0:
        code, message = 0, (stderr or stdout).decode(errors="replace").strip()
        try:
            answer = json.loads(stdout)
            code, message = int(answer.get("code", 0)), str(answer.get("msg", message))
            if answer.get("details"):
                message += f": {answer['details']}"
        except (ValueError, AttributeError):
            pass
        raise CniError(f"plugin type={plugin!r} failed ({command}): {message}", code=code)
    if not stdout.strip():
        return {}
    try:
        result = json.loads(stdout)
    except ValueError as err:
        raise CniError(f"plugin type={plugin!r} answered invalid JSON") from err
    return result if isinstance(result, dict) else {}


def _plugins(network: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    return network.get("plugins") or [network]


async def add_list(network: Mapping[str, Any], where: Invocation, *,
                   runtime_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """ADD every plugin of ``network`` in order; the last plugin's result."""
    result: dict[str, Any] | None = None
    for plugin in _plugins(network):
        config = plugin_config(network, plugin, runtime_config=runtime_config, prev_result=result)
        result = await invoke("ADD", config, where)
    return result or {}


async def delete_list(network: Mapping[str, Any], where: Invocation, *,
                      runtime_config: Mapping[str, Any] | None = None) -> None:
    """DEL every plugin of ``network`` in reverse order, trying all; the first error is raised."""
    first: CniError | None = None
    for plugin in reversed(_plugins(network)):
        try:
            await invoke("DEL", plugin_config(network, plugin, runtime_config=runtime_config), where)
        except CniError as err:
            first = first or err
    if first is not None:
        raise first
