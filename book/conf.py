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
# Markdown a cell displays (display(Markdown(...)): validation and caption reports, the results table) is parsed
# as MyST, whose syntax includes pipe tables; MyST-NB's default, CommonMark, has no tables and shows them as text.
nb_render_markdown_format = "myst"
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

html_theme = "sphinx_book_theme"
html_title = "ltxic course"
# no right-hand column (the page's table of contents): the article takes that width, so figures (frame strips,
# the landing page's comparison) are shown near their own size and their labels stay legible
html_theme_options = {"show_toc_level": 2, "secondary_sidebar_items": []}
html_last_updated_fmt = None
html_extra_path = ["_extra"]
# wrapping of long code and output lines, the article at the page's width, ltxic.io.tables.Table
html_static_path = ["_static"]
html_css_files = ["ltxic.css"]
