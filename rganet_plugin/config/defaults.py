"""RGANet's config keys, added to fast-reid's defaults (``fastreid.config.get_cfg``).

Every key the paper or the issues name is here, with the paper's value as the default. Unknown
keys in a YAML file or on the command line are rejected by yacs with the key's full name.
"""
from fastreid.config import CfgNode as CN


def add_rganet_config(cfg: CN) -> CN:
    """Add the plugin's keys to a fast-reid config in place (idempotent) and return it."""
    _C = cfg
    if "RGANET" in _C.MODEL:
        return cfg

    # ---------------------------------------------------------------- CLIP backbone
    _C.MODEL.BACKBONE.CLIP = CN()
    # Any open_clip ViT name ("ViT-B-16", "ViT-L-14", ...) or one of the plugin's small configs
    # ("RGANet-Tiny-ViT" for tests and the demo).
    _C.MODEL.BACKBONE.CLIP.NAME = "ViT-B-16"
    # open_clip pretrained tag ("openai", "laion2b_s34b_b88k", ...). Needs network access;
    # MODEL.BACKBONE.PRETRAIN_PATH (a local .pt/.bin/.safetensors) takes precedence.
    _C.MODEL.BACKBONE.CLIP.PRETRAINED_TAG = "openai"
    # Patch-embedding stride (TransReID's overlapping patches when < patch size). 0 = patch size.
    _C.MODEL.BACKBONE.CLIP.STRIDE = 0
    # Global feature of the backbone: "gap" (average of patch tokens, the paper's F_g) or "cls".
    _C.MODEL.BACKBONE.CLIP.GLOBAL_FEAT = "gap"
    # F: the last block as trained ("tokens") or a dense read-out of it (clip_dense_readout.py).
    _C.MODEL.BACKBONE.CLIP.DENSE_READOUT = "tokens"
    # Side information embedding (camera ids), as in TransReID / CLIP-ReID.
    _C.MODEL.BACKBONE.CLIP.SIE = CN({"ENABLED": False})
    _C.MODEL.BACKBONE.CLIP.SIE.COE = 3.0
    _C.MODEL.BACKBONE.CLIP.SIE.NUM_CAMERAS = 0  # 0 = filled in from the training set
    # Freeze the whole visual tower (prompt-learning stage does this itself).
    _C.MODEL.BACKBONE.CLIP.FREEZE = False

    # ---------------------------------------------------------------- RGANet
    _C.MODEL.RGANET = CN()
    # "none": the CLIP baseline (global branch only, ablation row 0); "stripes": fixed horizontal
    # stripes (PCB-like, rows 1-4); "rgm": the Region Generation Module (rows 5-8).
    _C.MODEL.RGANET.REGION_MODE = "rgm"
    _C.MODEL.RGANET.REGION_HEAD = "RGANetRegionHead"  # name in REGION_HEAD_REGISTRY
    _C.MODEL.RGANET.CLASS_NAMES = ["head", "upper body", "lower body", "foot"]
    _C.MODEL.RGANET.GAMMA = 20.0  # amplification factor of eq. (1)
    # Dimension of the text (joint) space. 0 = the CLIP model's embed_dim. When the backbone's
    # channels differ (ResNet-50: 2048, OSNet: 512, fast-reid ViT: 768) a learned 1x1 projection
    # maps the feature map into this space.
    _C.MODEL.RGANET.TEXT_DIM = 0
    # The CLIP model that supplies the text tower when the backbone is not a CLIP ViT.
    _C.MODEL.RGANET.TEXT_ENCODER = CN()
    _C.MODEL.RGANET.TEXT_ENCODER.NAME = ""  # "" = same as MODEL.BACKBONE.CLIP.NAME
    _C.MODEL.RGANET.TEXT_ENCODER.PRETRAIN_PATH = ""
    _C.MODEL.RGANET.TEXT_ENCODER.PRETRAINED_TAG = ""

    _C.MODEL.RGANET.PROMPT = CN()
    # "template": a hand-crafted template, "{}" is replaced by the class name (Table VI);
    # "learnable": CoOp context vectors [V]_1..[V]_K placed before the class token.
    _C.MODEL.RGANET.PROMPT.TYPE = "template"
    _C.MODEL.RGANET.PROMPT.TEMPLATE = "a {} part of a person."
    _C.MODEL.RGANET.PROMPT.N_CTX = 8
    _C.MODEL.RGANET.PROMPT.CTX_INIT = ""  # e.g. "a photo of a" (len must equal N_CTX words)
    # CoOp's two forms: one context shared by all classes (False) or one per class (True).
    _C.MODEL.RGANET.PROMPT.CLASS_SPECIFIC = False
    # Initialise the background embedding p_0: "text" (the prompt with "background"), "random" or
    # "zeros".
    _C.MODEL.RGANET.PROMPT.BACKGROUND_INIT = "text"
    _C.MODEL.RGANET.PROMPT.TRAIN_BACKGROUND = True  # p_0 keeps learning in stage 2

    _C.MODEL.RGANET.RAM = CN()
    _C.MODEL.RGANET.RAM.DAI = True  # discrimination-aware indicator alpha (eq. 4)
    _C.MODEL.RGANET.RAM.IAI = True  # invariance-aware indicator beta (eq. 6)
    # w from the indicators: "softmax" (Sec. III-D: softmax_j(alpha_j + beta_j)) or "mean"
    # ((alpha_j + beta_j) / 2, the values the paper's Fig. 4 prints). Used by eq. (7) and eq. (10).
    _C.MODEL.RGANET.RAM.CONFIDENCE = "softmax"
    # Stop gradients through w into the indicators' inputs (the paper lets them flow).
    _C.MODEL.RGANET.RAM.DETACH_W = False

    _C.MODEL.RGANET.MEMORY = CN()
    _C.MODEL.RGANET.MEMORY.MOMENTUM = 0.3  # m_u of eq. (5)
    # How m_u is read: "equation" (eq. 5: C <- m_u C + (1 - m_u) mean, a small m_u moves fast) or
    # "text" (Sec. IV-D: "a too-small m_u leads to the slow updating": C <- (1 - m_u) C + m_u mean).
    _C.MODEL.RGANET.MEMORY.MOMENTUM_READING = "equation"
    _C.MODEL.RGANET.MEMORY.ALPHA_THRESH = 0.85  # only regions with alpha > this update the bank
    _C.MODEL.RGANET.MEMORY.INIT = "stripes"  # "stripes" (the paper) or "regions"
    _C.MODEL.RGANET.MEMORY.INIT_MAX_IMAGES = 0  # 0 = the whole training set

    # ---------------------------------------------------------------- losses (fast-reid's node)
    # RGANet's losses sit next to fast-reid's CE / TRI under MODEL.LOSSES.
    _C.MODEL.LOSSES.REGION_CE = CN({"SCALE": 1.0})  # sum_j L_ram (eq. 7)
    _C.MODEL.LOSSES.REGION_TRI = CN({"SCALE": 1.0})  # sum_j L_tri(F_j^r)
    _C.MODEL.LOSSES.SEG = CN()  # L_seg (eq. 3), prompt-learning stage only
    _C.MODEL.LOSSES.SEG.SCALE = 1.0
    # How the pseudo masks (image resolution) reach the patch grid of L_seg, which the paper does
    # not say: "majority" (each patch's most frequent label), "soft" (area fractions as soft
    # targets) or "nearest" (one pixel per patch: misses small parts such as the feet).
    _C.MODEL.LOSSES.SEG.TARGETS = "majority"
    # Stage 2 keeping stage 1's regions (engine/region_keeping.py; 0 and 1 are off, the paper): a
    # distillation of stage 1's masks; backbone rate x FACTOR x LAYER_DECAY ** (blocks after it)
    _C.MODEL.LOSSES.MASK_DISTILL = CN({"SCALE": 0.0})
    _C.SOLVER.BACKBONE_LR_FACTOR, _C.SOLVER.LAYER_DECAY = 1.0, 1.0

    # ---------------------------------------------------------------- prompt-learning stage
    # Stage 1 is its own meta-architecture (MODEL.META_ARCHITECTURE: RGANetPromptLearner). These
    # keys say how a stage-2 config (RGANet with learnable prompts) gets it.
    _C.PROMPT_STAGE = CN()
    # With learnable prompts and no MODEL.WEIGHTS, train_net.py runs stage 1 first (into
    # OUTPUT_DIR/prompt_stage) and continues from its result, so one command runs the whole method.
    _C.PROMPT_STAGE.AUTO = True
    _C.PROMPT_STAGE.MAX_EPOCH = 30
    _C.PROMPT_STAGE.BASE_LR = 5e-5
    # A stage-1 result in OUTPUT_DIR/prompt_stage made with other settings (config, data) than
    # the run's: "rerun" moves it aside and learns the prompts again; "error" refuses.
    _C.PROMPT_STAGE.STALE = "rerun"
    # Learnable prompts with AUTO False and no MODEL.WEIGHTS would train stage 2 from an untrained
    # (random) context: refused unless this says it is wanted.
    _C.PROMPT_STAGE.ALLOW_UNTRAINED = False

    # ---------------------------------------------------------------- data
    # Root of the datasets. "" = the FASTREID_DATASETS environment variable, else "datasets".
    _C.DATASETS.ROOT = ""
    _C.DATASETS.SYNTHETIC = CN()
    _C.DATASETS.SYNTHETIC.NUM_TRAIN_IDS = 48
    _C.DATASETS.SYNTHETIC.NUM_TEST_IDS = 32
    _C.DATASETS.SYNTHETIC.IMAGES_PER_ID = 8
    _C.DATASETS.SYNTHETIC.SEED = 0
    _C.DATASETS.SYNTHETIC.HEIGHT = 256  # image size of the generated sets
    _C.DATASETS.SYNTHETIC.WIDTH = 128
    # Percent of identities that carry a bag (drawn and labelled 5 in the part masks, the class
    # "bags" of the paper's N = 5). 0 keeps the default dataset byte-identical.
    _C.DATASETS.SYNTHETIC.BAGS_PERCENT = 0
    # Outfits per identity of the cloth-changing set (SyntheticLTCC; 0 = 2 or 3 per identity);
    # the occluded set has one outfit and refuses other values.
    _C.DATASETS.SYNTHETIC.OUTFITS_PER_ID = 0
    # The misaligned world (occluded set only; 0 keeps the default dataset byte-identical):
    # percent of the images of every split with the person shifted and scaled (0.55-1.0 of its
    # height, anywhere in the frame), percent of the queries that are partial views (a window of
    # 40-80 % of the body from the top or the bottom, resized to the image, no occluder), and the
    # number of upper and of lower garments the identities draw from (0: each its own).
    _C.DATASETS.SYNTHETIC.MISALIGNED_PERCENT = 0
    _C.DATASETS.SYNTHETIC.PARTIAL_PERCENT = 0
    _C.DATASETS.SYNTHETIC.GARMENT_POOL = 0
    # How unreadable images are handled at scan time: "skip" (warn, count, drop), "error", or
    # "off" (no check).
    _C.DATASETS.CORRUPT_IMAGES = "skip"
    # Pseudo part masks for the prompt-learning stage: a folder of label maps, one per training
    # image, mirroring the dataset's folders (docs/datasets.md). "" = "<dataset_dir>/masks".
    _C.DATASETS.PSEUDO_MASKS = CN({"DIR": ""})

    # ---------------------------------------------------------------- reproducibility
    # Seed of python/numpy/torch RNGs (plus the process rank). -1 = fast-reid's time-based seed.
    _C.SEED = -1

    # ---------------------------------------------------------------- test
    _C.TEST.RGANET = CN()
    # Rows of the query-gallery distance computed at once (memory bound: CHUNK x #gallery floats).
    _C.TEST.RGANET.CHUNK_SIZE = 4096
    # "dense" (exact eq. 10 for every pair) or "faiss" (top-k retrieval over a faiss index).
    _C.TEST.RGANET.SEARCH = "dense"
    _C.TEST.RGANET.FAISS_INDEX = "Flat"  # "Flat", "IVF{nlist},Flat", "HNSW{M}"
    _C.TEST.RGANET.TOPK = 100
    # Features matched at test time (eq. 10 and the baseline): "bn" (after the BNNecks, as
    # fast-reid's EmbeddingHead returns) or "pre_bn" (the features F_g, F_j^r themselves, which the
    # paper's Sec. III-E names).
    _C.TEST.RGANET.FEATURES = "bn"
    # Evaluate with the global feature only (what fast-reid's ReidEvaluator sees).
    _C.TEST.RGANET.GLOBAL_ONLY = False
    return cfg
