"""HEAR-API modules, one per front-end: ``hear.randomcnn_<arch>`` (``-`` and ``+`` become ``_``).

Each exposes ``load_model``, ``get_scene_embeddings`` and ``get_timestamp_embeddings`` as the HEAR
benchmark's evaluation kits expect (see ``hear/common.py`` for the choices made). ``MODULES`` maps
architecture names to module names, e.g. for ``python -m features.extract --arch hear:hear.randomcnn_vgg``.
"""
MODULES = {
    "sample-level": "hear.randomcnn_sample_level",
    "frame-level": "hear.randomcnn_frame_level",
    "frame-level-many": "hear.randomcnn_frame_level_many",
    "7x96": "hear.randomcnn_7x96",
    "7x86": "hear.randomcnn_7x86",
    "timbral": "hear.randomcnn_timbral",
    "temporal": "hear.randomcnn_temporal",
    "timbral+temporal": "hear.randomcnn_timbral_temporal",
    "timbral+time": "hear.randomcnn_timbral_time",
    "vgg": "hear.randomcnn_vgg",
    "mfcc": "hear.randomcnn_mfcc",
}
