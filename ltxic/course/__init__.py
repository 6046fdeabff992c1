"""The course itself: lessons executed in order, the book built from them, the first-run demo.

* :mod:`~ltxic.course.runner`: ``run_course`` (papermill, one lesson after another, ``ltxic course``);
* :mod:`~ltxic.course.book`: ``build_book`` (Sphinx + MyST-NB, offline, ``ltxic book``);
* :mod:`~ltxic.course.demo`: ``run_demo``; :mod:`~ltxic.course.envcheck`: ``environment_report`` (``ltxic env``);
* :mod:`~ltxic.course.widgets`: the lessons' widgets (caption box, checkpoint, strength x guidance and drift-window
  sliders), each with the static figure or table the book shows instead.
"""
