"""Sphinx configuration of the course book (HTML from book/index.md and the lesson notebooks).

Built with Sphinx + MyST-NB + the Sphinx Book Theme: the engine and the look of Jupyter Book 1, used directly.
Jupyter Book 1 itself cannot be installed against our pins (its myst-parser < 4 needs markdown-it-py 3, we pin
4.3.0), and Jupyter Book 2 (mystmd) fetches its HTML theme from the web at build time; this needs neither, so
the build is pip-only and offline. Build: ``ltxic book`` or, from the repository root,
``python -m sphinx -b html -c book . book/_build/html``.

The source root is the repository root so the chapters are the notebooks themselves (``notebooks/*.ipynb``),
not copies; ``include_patterns`` keeps everything else out. Notebooks are shown as committed, without running
them (CI executes them separately, tests/test_notebooks.py).
"""

project = "ltxic: identity IC-LoRAs for LTX-2.3"
author = "the ltxic authors"
copyright = "2026, the ltxic authors"

root_doc = "book/index"
include_patterns = ["book/*.md", "notebooks/[0-9][0-9]_*.ipynb"]
exclude_patterns = ["book/_build/**", "**/.ipynb_checkpoints/**"]

extensions = ["myst_nb"]
nb_execution_mode = "off"
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

html_theme = "sphinx_book_theme"
html_title = "ltxic course"
html_theme_options = {"show_toc_level": 2}
html_last_updated_fmt = None
html_extra_path = ["_extra"]
