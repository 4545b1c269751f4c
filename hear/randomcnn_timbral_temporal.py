"""HEAR API module for the timbral+temporal front-end (random weights by default); see ``hear.common``.

    import hear.randomcnn_timbral_temporal as m
    model = m.load_model()                       # or load_model("seed=1,width=small") / a checkpoint
    emb = m.get_scene_embeddings(audio, model)   # audio: (n_sounds, n_samples) at model.sample_rate
"""
from hear.common import module_api

ARCH = "timbral+temporal"
load_model, get_scene_embeddings, get_timestamp_embeddings = module_api(ARCH)
