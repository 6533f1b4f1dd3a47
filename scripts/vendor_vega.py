"""Writes ``reports/templates/dvc/offline.html``: the page template of ``dvc plots show`` with Vega inlined.

``dvc plots show`` fills an HTML template with the plots; its own template loads Vega, Vega-Lite and
Vega-Embed from a CDN, so the page stays blank offline. This template has the three libraries inlined
(the versions DVC's renderer asks for; BSD-3-Clause, their licences in the page) and no ``{scripts}``
placeholder, so DVC adds no CDN tags; ``.dvc/config`` (``plots.html_template``) makes it the default.

Regenerate it (the libraries come from the npm registry)::

    cd "$(mktemp -d)" && npm pack vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2 && for f in *.tgz; do mkdir "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
    python scripts/vendor_vega.py "$PWD"
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "templates" / "dvc" / "offline.html"
PACKAGES = (("vega-5.20.2", "vega.min.js"), ("vega-lite-5.2.0", "vega-lite.min.js"), ("vega-embed-6.18.2", "vega-embed.min.js"))
PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{{refresh_tag}}
<title>DVC plots (offline)</title>
<!-- Written by scripts/vendor_vega.py. Inlined: {names}. Their licences follow the page. -->
{scripts}
<style>
  body {{ font-family: system-ui, sans-serif; margin: 16px; }}
  table {{ border-spacing: 15px; }}
</style>
</head>
<body>
{{plot_divs}}
{licences}
</body>
</html>
"""


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    folder = Path(argv[0])
    scripts, licences = [], []
    for package, name in PACKAGES:
        js = folder / package / "package" / "build" / name
        if not js.is_file():
            print(f"error: {js} not found: unpack `npm pack {package.rsplit('-', 1)[0]}@{package.rsplit('-', 1)[1]}` "
                  f"into {folder / package}", file=sys.stderr)
            return 2
        code = js.read_text(encoding="utf-8")
        for placeholder in ("{plot_divs}", "{scripts}", "{refresh_tag}", "</script"):
            if placeholder in code:  # DVC fills placeholders by plain replacement; a tag would end the script early
                print(f"error: {js} contains {placeholder!r}", file=sys.stderr)
                return 2
        scripts.append(f"<script>/* {package} */\n{code}\n</script>")
        licence = (folder / package / "package" / "LICENSE").read_text(encoding="utf-8").replace("--", "- -")
        licences.append(f"<!-- {package} licence:\n{licence}\n-->")
    names = ", ".join(p for p, _ in PACKAGES)
    OUT.write_text(PAGE.format(names=names, scripts="\n".join(scripts), licences="\n".join(licences)), encoding="utf-8")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
