"""Can Qt's X11 platform plugin load here? Checked before Qt is imported, because Qt aborts the
process when its platform plugin cannot load, with a message that names the wrong library.

Qt-free. On Linux with X11 (``QT_QPA_PLATFORM`` unset or ``xcb``) the system libraries that the
xcb plugin of the PySide6 wheel links against are opened one by one; any that fails is named, with
the one ``apt`` line (Debian/Ubuntu) that installs everything the editor needs. The table was read
off the plugin with ``ldd`` (every library it resolves outside the wheel, reduced to the packages a
minimal desktop may lack; the rest are their dependencies or part of every system).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

# soname -> the Debian/Ubuntu package that provides it
SYSTEM_LIBRARIES: dict[str, str] = {
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libX11-xcb.so.1": "libx11-xcb1",
}
APT_LINE = "sudo apt install " + " ".join(SYSTEM_LIBRARIES.values())


def uses_xcb(environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether Qt will start its X11 (xcb) platform plugin."""
    if not platform.startswith("linux"):
        return False
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(":")[0].split(";")[0] == "xcb"
    return bool(environ.get("DISPLAY")) and not environ.get("WAYLAND_DISPLAY")


def xcb_plugin() -> Path | None:
    """The PySide6 wheel's xcb platform plugin, found without importing PySide6."""
    spec = importlib.util.find_spec("PySide6")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        plugin = Path(folder) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if plugin.is_file():
            return plugin
    return None


def _loads(name: str, load: Callable[[str], object]) -> str | None:
    try:
        load(name)
    except OSError as exc:
        return str(exc)
    return None


def platform_problem(
    environ: Mapping[str, str] = os.environ,
    platform: str = sys.platform,
    load: Callable[[str], object] | None = None,
    plugin: Path | None = None,
) -> str | None:
    """One line saying why Qt's platform plugin cannot load and what to install, or None."""
    if not uses_xcb(environ, platform):
        return None
    load = load or ctypes.CDLL
    missing = [name for name in SYSTEM_LIBRARIES if _loads(name, load) is not None]
    if missing:
        return (
            "the editor cannot start: Qt's X11 platform plugin needs system libraries that are "
            f"missing here ({', '.join(missing)}); on Debian/Ubuntu install them with: {APT_LINE}"
        )
    plugin = plugin or xcb_plugin()
    reason = _loads(str(plugin), load) if plugin else None
    if reason:
        return (
            f"the editor cannot start: Qt's X11 platform plugin does not load ({reason}); "
            f"on Debian/Ubuntu: {APT_LINE}"
        )
    return None
