"""Vendor the web console's third-party libraries (``make console``; needs Node's npm).

``npm ci`` installs ``console/package.json`` at the versions ``console/package-lock.json``
pins, into a temporary folder; this copies each package's browser ES modules and its
license file into ``shared/api/console/static/vendor/<package>/`` (the package's own
layout, so relative imports inside it keep working) and writes ``vendor/MANIFEST.json``
(package, version, license, files). The console loads them through the import map of
``static/index.html``: there is no bundler and no build step, and ``make dev`` and
``make test`` need no Node.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSOLE = ROOT / "console"
VENDOR = ROOT / "shared" / "api" / "console" / "static" / "vendor"

# What each package ships to the browser: files or folders under the package, copied
# as they are. ES modules only (``import``/``export``), no source maps.
FILES: dict[str, list[str]] = {
    "@codemirror/autocomplete": ["dist/index.js"],
    "@codemirror/commands": ["dist/index.js"],
    "@codemirror/lang-json": ["dist/index.js"],
    "@codemirror/lang-yaml": ["dist/index.js"],
    "@codemirror/language": ["dist/index.js"],
    "@codemirror/lint": ["dist/index.js"],
    "@codemirror/state": ["dist/index.js"],
    "@codemirror/streamparser": ["dist/index.js"],
    "@codemirror/view": ["dist/index.js"],
    "@lezer/common": ["dist/index.js"],
    "@lezer/highlight": ["dist/index.js"],
    "@lezer/json": ["dist/index.js"],
    "@lezer/lr": ["dist/index.js"],
    "@lezer/yaml": ["dist/index.js"],
    "@marijn/find-cluster-break": ["src/index.js"],
    "crelt": ["index.js"],
    "style-mod": ["src/style-mod.js"],
    "w3c-keyname": ["index.js"],
    "@dagrejs/dagre": ["dist/dagre.esm.js"],
    "chart.js": ["dist/chart.js", "dist/chunks/index.js"],
    "@kurkle/color": ["dist/color.esm.js"],
    "yaml": ["browser"],
}
# Pinned for a consistent tree but not loaded: dagre's ES module bundles graphlib.
BUNDLED = {"@dagrejs/graphlib"}
LICENSES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENSE-MIT")


def install(folder: Path) -> Path:
    for name in ("package.json", "package-lock.json"):
        shutil.copy(CONSOLE / name, folder / name)
    subprocess.run(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=folder, check=True
    )
    return folder / "node_modules"


def copy_package(modules: Path, name: str, parts: list[str]) -> dict[str, object]:
    source, target = modules / name, VENDOR / name
    meta = json.loads((source / "package.json").read_text())
    files: list[str] = []
    for part in parts:
        path = source / part
        if not path.exists():
            raise SystemExit(f"{name}: {part} is missing (a new version moved it?)")
        found = sorted(p for p in path.rglob("*.js")) if path.is_dir() else [path]
        for file in found:
            dest = target / file.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(file, dest)
            files.append(str(dest.relative_to(VENDOR)))
    license_file = next((source / n for n in LICENSES if (source / n).exists()), None)
    if license_file is None:
        raise SystemExit(f"{name} ships no license file")
    shutil.copy(license_file, target / license_file.name)
    files.append(str((target / license_file.name).relative_to(VENDOR)))
    return {
        "package": name,
        "version": meta["version"],
        "license": meta.get("license"),
        "files": files,
    }


def main() -> int:
    if shutil.which("npm") is None:
        print("make console needs Node's npm (maintainers only)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="wfe-console-") as temp:
        modules = install(Path(temp))
        shutil.rmtree(VENDOR, ignore_errors=True)
        VENDOR.mkdir(parents=True)
        manifest = [copy_package(modules, name, FILES[name]) for name in sorted(FILES)]
        pinned = json.loads((CONSOLE / "package.json").read_text())["dependencies"]
        unused = sorted(set(pinned) - set(FILES) - BUNDLED)
        if unused:
            raise SystemExit(f"pinned but not vendored: {unused}")
    text = json.dumps({"packages": manifest}, indent=2) + "\n"
    (VENDOR / "MANIFEST.json").write_text(text)
    print(f"vendored {len(manifest)} packages into {VENDOR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
