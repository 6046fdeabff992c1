"""Sphinx configuration of the course book (HTML from book/index.md and the lesson notebooks).

Built with Sphinx + MyST-NB + the Sphinx Book Theme: the engine and the look of Jupyter Book 1, used directly.
Jupyter Book 1 itself cannot be installed against our pins (its myst-parser < 4 needs markdown-it-py 3, we pin
4.3.0), and Jupyter Book 2 (mystmd) fetches its HTML theme from the web at build time; this needs neither, so
the build is pip-only and offline. Build: ``ltxic book`` (from the course run in ``outputs/course/``).

``ltxic.course.book.build_book`` stages the source tree: ``book/`` (these pages, plus ``book/_generated/``: the landing
page's result from the executed lesson 06 and the GPU table of the RunPod chapter) and ``notebooks/``, the executed
copies of the lessons (``ltxic course``'s output), so the chapters show their plots, frame strips and clips.
Sphinx does not run them again (``nb_execution_mode = "off"
# offline: no ipywidgets JavaScript from a CDN (the staged lessons keep their progress bars as text)
nb_ipywidgets_js = {}``).
"""

project = "ltxic: identity IC-LoRAs for LTX-2.3"
author = "the ltxic authors"
copyright = "2026, the ltxic authors"

root_doc = "book/index"
include_patterns = ["book/*.md", "notebooks/[0-9][0-9]_*.ipynb"]
exclude_patterns = ["book/_build/**", "book/_generated/**", "**/.ipynb_checkpoints/**"]

extensions = ["myst_nb"]
nb_execution_mode = "off"
# offline: no ipywidgets JavaScript from a CDN (the staged lessons keep their progress bars as text)
nb_ipywidgets_js = {}
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

html_theme = "sphinx_book_theme"
html_title = "ltxic course"
html_theme_options = {"show_toc_level": 2}
html_last_updated_fmt = None
html_extra_path = ["_extra"]
