"""Opens the built documentation site in headless Chromium, as a reader would.

    mkdocs build --strict && python scripts/check_site.py --site site --out site-check

Serves ``--site`` over HTTP (the search index loads in a web worker, which a file:// page
cannot start), opens the home page, a guide, an API page and a tutorial, and fails if any logs
a console error, if a page misses what it must show (an API signature, a tutorial's executed
output and figure), or if the search box finds no page for "train". A screenshot of each page
and of the search results is written to ``--out``. Chromium is the system's (Debian's
``chromium`` package, or ``$CHROMIUM``): playwright drives it, and downloads no browser.
"""

import argparse
import functools
import http.server
import os
import pathlib
import shutil
import sys
import threading

from playwright.sync_api import sync_playwright

# (page, a CSS selector the page must show, what it proves)
PAGES = [("index.html", "article h1", "the home page"),
         ("guides/sweeps/index.html", "article h1", "a guide"),
         ("reference/running/index.html", ".doc-signature, .doc-heading", "an API page"),
         ("tutorials/quickstart/index.html", ".jp-OutputArea-output img, .output_png img, img",
          "a tutorial with its executed figure")]


def _serve(site: pathlib.Path) -> tuple[http.server.ThreadingHTTPServer, str]:
  handler = functools.partial(_QuietHandler, directory=str(site))
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  return server, f"http://127.0.0.1:{server.server_address[1]}/"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
  def log_message(self, *args):  # One line per request would bury the result.
    pass


def _chromium() -> str:
  path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
  if not path:
    sys.exit("no Chromium found: apt-get install chromium, or set CHROMIUM=/path/to/chrome")
  return path


def check(site: pathlib.Path, out: pathlib.Path) -> list[str]:
  """The problems found (empty if none); screenshots go to ``out``."""
  out.mkdir(parents=True, exist_ok=True)
  server, base = _serve(site)
  problems = []
  try:
    with sync_playwright() as p:
      browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
      page = browser.new_page(viewport={"width": 1280, "height": 900})
      errors: list[str] = []
      page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
      page.on("pageerror", lambda e: errors.append(str(e)))
      for path, selector, what in PAGES:
        errors.clear()
        response = page.goto(base + path, wait_until="networkidle")
        if response is None or response.status != 200:
          problems.append(f"{path}: HTTP {response and response.status}")
          continue
        if page.locator(selector).count() == 0:
          problems.append(f"{path}: {what} shows no {selector}")
        page.screenshot(path=str(out / (path.replace("/index.html", "").replace("/", "_")
                                        .replace(".html", "") + ".png")))
        problems += [f"{path}: console error: {e}" for e in errors]
        print(f"{path}: {what}, {len(errors)} console error(s)")
      problems += _search(page, base, out)
      browser.close()
  finally:
    server.shutdown()
  return problems


def _search(page, base: str, out: pathlib.Path) -> list[str]:
  """Types "train" into the search box and counts the pages it finds."""
  page.goto(base + "index.html", wait_until="networkidle")
  page.locator("label.md-search__icon, .md-search__input").first.click()
  page.locator("input.md-search__input").press_sequentially("train", delay=50)  # Keystrokes.
  try:
    page.wait_for_selector(".md-search-result__item", timeout=15_000)
  except Exception:  # playwright's TimeoutError: nothing was found.
    page.screenshot(path=str(out / "search.png"))
    return ["search: 'train' found nothing"]
  found = page.locator(".md-search-result__item").count()
  page.screenshot(path=str(out / "search.png"))
  print(f"search 'train': {found} result(s)")
  return []


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--site", default="site", type=pathlib.Path)
  parser.add_argument("--out", default="site-check", type=pathlib.Path)
  args = parser.parse_args()
  if not (args.site / "index.html").exists():
    sys.exit(f"{args.site}/index.html does not exist: run mkdocs build first")
  problems = check(args.site, args.out)
  for problem in problems:
    print("PROBLEM:", problem)
  print(f"screenshots in {args.out}/")
  return 1 if problems else 0


if __name__ == "__main__":
  sys.exit(main())
