"""Files and media, the bottom layer: everything here is used by every stage above and imports nothing of ltxic.

* :mod:`~ltxic.io.errors`: ``InputError`` and ``input_error_message`` (one line per bad input: the file, what, the fix);
* :mod:`~ltxic.io.files`: atomic writes (``atomic_path``, ``staged_files``, ``write_json_atomic``), ``sha256_file``,
  ``DiskFullError``;
* :mod:`~ltxic.io.media`: video, audio and image files (``read_video``, ``write_video``, ``read_audio``, ``probe_video``,
  ``sample_frames``, ``resample``, ``MediaError``);
* :mod:`~ltxic.io.figures`: ``new_figure`` (matplotlib figures that render the same in JupyterLab and the book);
* :mod:`~ltxic.io.profiling`: ``StageClock`` and ``StepTimer`` (seconds and peak GPU memory per stage, ``stages.json``);
* :mod:`~ltxic.io.progress`: ``progress`` (tqdm bars that keep their final state in JupyterLab and saved notebooks);
* :mod:`~ltxic.io.tables`: ``Table`` (rows shown as HTML, Markdown or text tables) and ``shown_path`` (relative paths).
"""
