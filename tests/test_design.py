"""The contracts of docs/design.md: the region-head registry, the layout that follows from the
config, the renamed keys, one feature record, and a checkpoint read once."""
import os

import pytest
import torch
from torch import nn

import rganet_plugin  # noqa: F401
from rganet_plugin.config import load_config
from rganet_plugin.config.setup import RENAMED_KEYS, ConfigError


def test_region_head_has_its_own_registry_not_fastreids(make_cfg):
    from fastreid.modeling.heads.build import REID_HEADS_REGISTRY
    from fastreid.modeling.meta_arch import build_model

    from rganet_plugin.modeling.heads import REGION_HEAD_REGISTRY, RGANetRegionHead

    assert REGION_HEAD_REGISTRY.get("RGANetRegionHead") is RGANetRegionHead
    assert "RGANetRegionHead" not in REID_HEADS_REGISTRY._obj_map

    @REGION_HEAD_REGISTRY.register()
    class MeanRegionHead(RGANetRegionHead):  # a user's head, built through the same contract
        pass

    cfg = make_cfg()
    cfg.defrost()
    cfg.MODEL.HEADS.NUM_CLASSES = 3
    cfg.MODEL.RGANET.REGION_HEAD = "MeanRegionHead"
    assert type(build_model(cfg).region_head) is MeanRegionHead
    cfg.MODEL.RGANET.REGION_HEAD = "NoSuchHead"
    with pytest.raises(KeyError, match="NoSuchHead.*registered"):
        build_model(cfg)
    REGION_HEAD_REGISTRY._obj_map.pop("MeanRegionHead")


@pytest.mark.parametrize("overrides", [
    {"MODEL.RGANET.REGION_MODE": "rgm"}, {"MODEL.RGANET.REGION_MODE": "stripes"},
    {"MODEL.RGANET.REGION_MODE": "none"}, {"TEST.RGANET.GLOBAL_ONLY": True},
    {"MODEL.RGANET.CLASS_NAMES": ["upper body", "lower body"], "MODEL.HEADS.EMBEDDING_DIM": 32},
])
def test_the_output_layout_follows_from_the_config(make_cfg, overrides):
    """The evaluator gets its layout from the config (no state handed over by the trainer):
    it must be the layout of what the model returns."""
    from fastreid.modeling.meta_arch import build_model

    from rganet_plugin.modeling.meta_arch import layout_for

    cfg = make_cfg()
    cfg.defrost()
    cfg.MODEL.HEADS.NUM_CLASSES = 3
    cfg.merge_from_list([x for kv in overrides.items() for x in kv])
    model = build_model(cfg).eval()
    with torch.no_grad():
        out = model({"images": torch.rand(2, 3, 256, 128) * 255})
    layout = layout_for(cfg)
    assert model.layout == layout and out.shape == (2, layout.total_dim)
    # a fast-reid meta-architecture: one global feature of whatever width it has
    cfg.MODEL.META_ARCHITECTURE = "Baseline"
    assert layout_for(cfg).num_regions == 0 and layout_for(cfg).global_dim == 0


@pytest.mark.parametrize("old", sorted(RENAMED_KEYS))
def test_old_key_names_are_refused_naming_the_new_ones(old, tmp_path):
    new = RENAMED_KEYS[old].split()[0]
    with pytest.raises(ConfigError, match=f"{old}.*renamed.*{new}"):
        load_config("", [old, "1"])
    # in a file, yacs names the first unknown node: every renamed key under it is listed
    parts = old.split(".")
    text = "".join(f"{'  ' * i}{p}:\n" for i, p in enumerate(parts[:-1]))
    (tmp_path / "old.yml").write_text(text + f"{'  ' * (len(parts) - 1)}{parts[-1]}: 1\n")
    with pytest.raises(ConfigError, match=f"renamed.*{new}"):
        load_config(str(tmp_path / "old.yml"))


def test_one_feature_record_from_model_output_to_tools():
    from rganet_plugin.evaluation.distance import as_features
    from rganet_plugin.modeling.outputs import FeatureLayout, Features
    from rganet_plugin.tools import predictor

    lay = FeatureLayout(3, 2, 2)
    packed = torch.arange(2 * lay.total_dim, dtype=torch.float32).view(2, -1)
    f = lay.unpack(packed, ["a.jpg", "b.jpg"])
    assert isinstance(f, Features) and f.paths == ("a.jpg", "b.jpg")
    assert torch.equal(f.weights, packed[:, -2:]) and f.region_feats.shape == (2, 2, 2)
    assert as_features(f) .global_feat.shape == (2, 3)
    n = f.to_numpy()
    assert n.region_feats.dtype.name == "float32" and torch.equal(n.to_torch().weights, f.weights)
    assert predictor.Features is Features
    with pytest.raises(ValueError, match="columns"):
        lay.unpack(packed[:, :-1])


def test_checkpoint_is_read_once_and_wrappings_accepted(make_cfg, tmp_path, monkeypatch):
    from fastreid.modeling.meta_arch import build_model
    from fastreid.utils.checkpoint import Checkpointer

    from rganet_plugin.engine.checkpoint import (CheckpointMismatchError, ModelCheckpointer,
                                                 read_checkpoint)

    cfg = make_cfg()
    cfg.defrost()
    cfg.MODEL.HEADS.NUM_CLASSES = 3
    model = build_model(cfg)
    path = tmp_path / "m.pth"
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, path)  # bare + DDP
    reads = []
    real = Checkpointer._load_file
    monkeypatch.setattr(Checkpointer, "_load_file",
                        lambda self, f: reads.append(f) or real(self, f))
    other = build_model(cfg)
    ModelCheckpointer(other, strict=True).load(str(path))
    assert len(reads) == 1
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  other.state_dict().values()))
    checkpoint = read_checkpoint(str(path))
    cfg.MODEL.RGANET.CLASS_NAMES = ["head", "body"]
    with pytest.raises(CheckpointMismatchError, match="shape mismatches"):
        ModelCheckpointer(build_model(cfg), strict=True).load_checkpoint(checkpoint, "m.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointMismatchError, match="cannot read"):
        read_checkpoint(str(tmp_path / "junk.pth"))
    with pytest.raises(FileNotFoundError, match="MODEL.WEIGHTS"):
        ModelCheckpointer(nn.Linear(2, 2)).load(str(tmp_path / "missing.pth"))


def test_evaluator_takes_a_fastreid_model_of_any_width_and_refuses_a_wrong_rganet_row(make_cfg):
    """A fast-reid meta-arch's layout (FeatureLayout(0)) fits any global width; an RGANet layout
    fits only its own total width (the CI failure of bagtricks_R50_demo: 512 columns refused)."""
    from rganet_plugin.evaluation.weighted_region_evaluator import WeightedRegionEvaluator
    from rganet_plugin.modeling.outputs import FeatureLayout

    cfg = make_cfg()
    inputs = {"targets": torch.tensor([0, 1]), "camids": torch.tensor([0, 1])}
    ev = WeightedRegionEvaluator(cfg, 1, FeatureLayout(0))
    ev.process(inputs, torch.randn(2, 512))
    ev.process(inputs, torch.randn(2, 2048))
    assert FeatureLayout(0).fits(7) and not FeatureLayout(3, 2, 2).fits(8)
    ev = WeightedRegionEvaluator(cfg, 1, FeatureLayout(3, 2, 2))
    ev.process(inputs, torch.randn(2, 9))
    with pytest.raises(ValueError, match="disagree on the feature layout"):
        ev.process(inputs, torch.randn(2, 8))


# ------------------------------------------------------------------------------ the import graph
# The house of docs/design.md: the core's rooms in layers, each importing only its own layer or
# those below; the generated world beside the core (only the registration of the generated dataset
# imports it); FIRe², AG-ReID and the analysis above, importing the core and never imported by it
# (and the two projects not each other).
CORE_LAYERS = (("config",), ("modeling",), ("compat", "data", "evaluation"), ("engine",),
               ("tools", ""))  # "": the package face, rganet_plugin/__init__.py
GENERATED = "rganet_plugin.synthetic"
REGISTRATION = "rganet_plugin.data.datasets.synthetic"
PACKAGES = {"rganet_plugin": "rganet_plugin", "rganet_analysis": "rganet_analysis",
            "fire2": os.path.join("projects", "FIRe2", "fire2"),
            "agreid": os.path.join("projects", "AGReID", "agreid")}


def _modules():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    mods = {}
    for name, rel in PACKAGES.items():
        base = os.path.join(root, rel)
        for cur, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for f in (f for f in files if f.endswith(".py")):
                parts = [name, *os.path.relpath(os.path.join(cur, f), base)[:-3].split(os.sep)]
                mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = \
                    os.path.join(cur, f)
    return mods


def import_graph():
    """``{module: {modules it imports}}`` over rganet_plugin, rganet_analysis, fire2 and agreid: every
    import statement, those inside functions included (a lazy import is still an arrow)."""
    import ast

    mods = _modules()
    graph = {}
    for mod, path in mods.items():
        package = mod if path.endswith("__init__.py") else mod.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                while name and name not in mods:  # the module a name lives in
                    name = name.rsplit(".", 1)[0] if "." in name else ""
                if name and name != mod:
                    targets.add(name)
        graph[mod] = targets
    return graph


def _core_layer(mod):
    room = mod.split(".")[1] if mod.count(".") else ""
    return next((i for i, rooms in enumerate(CORE_LAYERS) if room in rooms), None)


def _circles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_circle():
    graph = import_graph()
    assert len(graph) > 80 and "rganet_plugin.engine.trainer" in graph
    assert _circles(graph) == []
    # the checker sees a circle when there is one
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_runs_up_a_layer_and_the_core_stays_the_core():
    graph = import_graph()
    ups, generated, outside = [], [], []
    for mod, targets in graph.items():
        for t in targets:
            if mod.startswith("rganet_plugin") and not mod.startswith(GENERATED):
                if t.startswith(GENERATED):
                    if mod != REGISTRATION:
                        generated.append((mod, t))
                elif t.startswith("rganet_plugin") and _core_layer(t) > _core_layer(mod):
                    ups.append((mod, t))
            if mod.startswith(GENERATED) and t.startswith("rganet_plugin.") \
                    and not t.startswith(GENERATED) and _core_layer(t) > 1:
                generated.append((mod, t))  # the generated world builds on config and modeling
            if mod.startswith("rganet_plugin") and not t.startswith("rganet_plugin"):
                outside.append((mod, t))  # FIRe² or the analysis
            if mod.startswith(("fire2", "agreid")) and t.startswith(("rganet_analysis", "fire2",
                                                                     "agreid")) \
                    and t.split(".")[0] != mod.split(".")[0]:  # the projects: the core only
                outside.append((mod, t))
    assert ups == [], "imports that run up a layer"
    assert generated == [], "the core imports the generated world beyond its registration " \
                            "(or the generated world imports the core above modeling)"
    assert outside == [], "the installed plugin imports FIRe², AG-ReID or the analysis (or a " \
                          "project imports the analysis or the other project)"
    assert REGISTRATION in {m for m, ts in graph.items() if any(t.startswith(GENERATED) for t in ts)}


def test_the_command_line_reaches_the_generated_world_and_names_where_compare_went(capsys):
    """``pretrain-clip`` is the generated world's command, dispatched by name; ``compare`` left
    the installed plugin for the analysis package, and asking for it says where it is."""
    from rganet_plugin.tools.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(["pretrain-clip", "--help"])
    assert e.value.code == 0 and "--eval-weights" in capsys.readouterr().out
    assert main(["compare", "--configs", "a.yml"]) == 2
    assert "python -m rganet_analysis.compare" in capsys.readouterr().err
