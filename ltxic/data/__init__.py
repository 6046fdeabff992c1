"""Stage 1-3 of the course: the files a user brings, checked before anything trains on them.

* :mod:`~ltxic.data.assets`: LTX-2.3 files into a ComfyUI tree (``download_assets``, ``asset_status``);
* :mod:`~ltxic.data.dataset`: the ``dataset.json`` schema with consent records (``load_dataset``, ``Dataset``,
  ``ConsentRecord``, ``require_consent``);
* :mod:`~ltxic.data.pairing`: a folder of clips and voice recordings into a dataset (``pair_folder``; the reference
  from the clips that agree on one face, ``agree_on_clips``, with a ``FaceMatcher`` the caller passes in);
* :mod:`~ltxic.data.validate`: files, media, consent and captions of every entry (``check_dataset``, ``Problem``,
  ``ValidationReport``); :mod:`~ltxic.data.report_plots` draws a report;
* :mod:`~ltxic.data.captions`: caption hygiene (``check_captions``, ``clean_dataset``);
* :mod:`~ltxic.data.buckets`: the clip sizes the VAE accepts (``ResolutionBucket``, ``nearest_valid_bucket``);
* :mod:`~ltxic.data.faces` and :mod:`~ltxic.data.speech`: is a face visible, where is the speech.

The identity checks of a dataset (is it the same person?) sit in :mod:`ltxic.identity.dataset_check`.
"""
