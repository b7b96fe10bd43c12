"""The workflow's plan (e2ed2.plan): config overrides that merge, expansion, DAG-time validation."""

from __future__ import annotations

import copy

import pytest

from e2ed2.config import ConfigError
from e2ed2.plan import DEFAULT_CONFIG, Plan, load_yaml, resolve_config

DEFAULT = load_yaml(DEFAULT_CONFIG)


def test_partial_override_merges_into_the_default():
    cfg = resolve_config(DEFAULT, {"run": "mine", "models": {"e2ed2": {"method": {"lambda_adv": 0.2}}}})
    assert cfg["run"] == "mine" and cfg["models"]["e2ed2"]["method"]["lambda_adv"] == 0.2
    assert cfg["models"]["e2ed2"]["method"]["lambda_perc"] == DEFAULT["models"]["e2ed2"]["method"]["lambda_perc"]
    assert set(cfg["models"]) == set(DEFAULT["models"]) and cfg["sampling"] == DEFAULT["sampling"]


def test_cli_values_are_typed_and_replace_blocks():
    # Snakemake's --config 'sampling={n: 100}' reaches the workflow with the 100 as a string
    cfg = resolve_config(DEFAULT, {}, {"sampling": {"n": "100"}})
    assert cfg["sampling"]["n"] == 100 and cfg["sampling"]["seed_blocks"] == DEFAULT["sampling"]["seed_blocks"]
    own = {"replace": ["models"], "models": {"edm": {"variants": {"main": {}}}}}
    assert set(resolve_config(DEFAULT, own)["models"]) == {"edm"}
    with pytest.raises(ConfigError, match="replace: lists 'evaluate'"):
        resolve_config(DEFAULT, {"replace": ["evaluate"]})


def test_expansion_dataset_overrides_seeds_and_teachers():
    plan = Plan(resolve_config(DEFAULT, {}))
    run = plan.run_config("digits", "e2ed2", "k1", 1)
    assert run["net"]["resolution"] == 8 and run["method"]["steps"] == 1 and run["train"]["seed"] == 1
    assert run["method"]["teacher"] == "results/default/digits/train/edm/main/s0/final.pt"
    # every student has three training seeds (method-level train_seeds); the teacher one
    assert plan.train_seeds("mnist5k", "e2ed2", "main") == [0, 1, 2]
    assert plan.train_seeds("mnist5k", "ddim", "main") == [0]
    assert plan.train_seeds("digits", "cd", "main") == plan.train_seeds("digits", "e2ed2", "paper") == [0, 1, 2]
    assert plan.checkpoint_for("mnist5k", "ddim", "main", 0) == "results/default/mnist5k/train/edm/main/s0/final.pt"
    # mnist5k does not sample ddpm (nor diagnose it): it is not trained there; digits needs it (a row)
    assert ("ddpm", "main") in plan.needed("digits") and ("ddpm", "main") not in plan.needed("mnist5k")
    sets = plan.sample_sets()
    assert {s.seed for s in sets if s.method == "e2ed2" and s.variant == "main"} == {0, 1, 2}
    # an evaluate entry restricted to one dataset trains that model there only
    cfg = resolve_config(DEFAULT, {"evaluate": {"e2ed2_paper_ddim": {"datasets": ["mnist5k"]}}})
    assert ("e2ed2", "paper") in Plan(cfg).needed("mnist5k") and ("e2ed2", "paper") not in Plan(cfg).needed("digits")
    # teacher pairs: one file per training seed, shared by the arms of that seed; leaky and data pairing draw none
    pairs = {plan.pairs_file("digits", "e2ed2", v, 1) for v in ("main", "k1", "k4", "noperc", "noadv")}
    assert pairs == {"results/default/digits/pairs/edm-main/ddim-10-n3840-drop0.1-bf16-s1.npz"}
    assert run["method"]["teacher_pairs"] == "results/default/digits/pairs/edm-main/ddim-10-n3840-drop0.1-bf16-s1.npz"
    assert plan.pairs_file("digits", "e2ed2", "leaky", 1) is None
    # the pairs' precision is the student's: an fp32 student (train.amp none) reads fp32 pairs
    fp32 = Plan(resolve_config(DEFAULT, {"models": {"e2ed2": {"train": {"amp": "none"}}}}))
    assert fp32.pairs_file("digits", "e2ed2", "main", 1).endswith("-drop0.1-fp32-s1.npz")
    assert plan.pairs_file("digits", "e2ed2", "paper", 1) is None


def test_curve_models_are_trained_where_diagnosed():
    # a model only in diagnostics.curve_models is still trained on the diagnosed datasets
    cfg = resolve_config(DEFAULT, {"diagnostics": {"models": [], "curve_models": ["ddpm/main"],
                                                   "datasets": ["digits"]}})
    plan = Plan(cfg)
    assert ("ddpm", "main") in plan.needed("digits")
    assert plan.diagnosed("digits", "curve") == ["ddpm/main"] and plan.diagnosed("mnist5k", "curve") == []
    with pytest.raises(ValueError, match="unknown diagnostic 'curves'"):
        plan.diagnosed("digits", "curves")
    cfg["diagnostics"]["curve_models"] = []
    cfg["evaluate"] = {k: v for k, v in cfg["evaluate"].items() if not k.startswith("ddpm")}
    assert ("ddpm", "main") not in Plan(cfg).needed("digits")


def test_validation_names_the_model_and_the_key():
    bad = copy.deepcopy(DEFAULT)
    bad["models"]["e2ed2"]["variants"]["noadv"]["method"]["lamda_adv"] = 0.0
    with pytest.raises(ConfigError, match=r"models\.e2ed2 \(variant noadv.*unknown key\(s\) \['lamda_adv'\]"):
        Plan(bad).validate()
    bad = copy.deepcopy(DEFAULT)
    bad["models"]["cd"]["teacher"] = "edm/mian"
    with pytest.raises(ConfigError, match=r"models\.cd\.teacher names 'edm/mian'.*\(did you mean 'main'\?\)"):
        Plan(bad).validate()
    Plan(DEFAULT).validate()  # guard: the default itself is valid


def test_mid_sigmas_reach_only_their_consistency_sets():
    cfg = resolve_config(DEFAULT, {"evaluate": {"ct_main_consistency": {"mid_sigmas": {2: [0.5]}}}})
    plan = Plan(cfg)
    assert plan.mid_sigmas("digits", "ct", "main", "consistency", 2) == [0.5]
    assert plan.mid_sigmas("digits", "ct", "main", "consistency", 4) is None
    assert plan.mid_sigmas("digits", "cd", "main", "consistency", 2) is None
    bad = resolve_config(DEFAULT, {"evaluate": {"ct_main_consistency": {"mid_sigmas": {2: [0.5, 0.2]}}}})
    with pytest.raises(ConfigError, match=r"mid_sigmas\.2: 2 steps take 1 intermediate"):
        Plan(bad).validate()
    bad = resolve_config(DEFAULT, {"evaluate": {"ddim_main_ddim": {"mid_sigmas": {2: [0.5]}}}})
    with pytest.raises(ConfigError, match="option of the consistency sampler, not ddim"):
        Plan(bad).validate()


def test_a_student_that_disagrees_with_its_teacher_fails_at_dag_build():
    """schedule/precond (TEACHER_KEYS) are checked when the plan is made, not when the job loads the teacher."""
    cfg = resolve_config(DEFAULT, {"models": {"e2ed2": {"variants": {"k1": {"method": {"schedule": "linear"}}}}}})
    with pytest.raises(ConfigError, match=r"models\.e2ed2 \(variant k1.*schedule='linear' but its teacher edm/main "
                                          r"has schedule='edm'"):
        Plan(cfg).validate()


def test_students_inherit_the_teachers_schedule_at_dag_build():
    """The schedule is stated once, on the teacher: a student that leaves TEACHER_KEYS unset gets the
    teacher's resolved values in its run config (where they differ from a default), so it trains,
    and its identity records, what the teacher was trained with."""
    plan = Plan(resolve_config(DEFAULT, {}))
    for m in ("cd", "ct", "e2ed2"):
        assert not {"schedule", "precond"} & set(DEFAULT["models"][m].get("method") or {})
        method = plan.run_config("digits", m, "main", 0)["method"]
        assert method["schedule"] == method["precond"] == "edm" and "sigma_max" not in method
    # a DDPM teacher (VP, ε): CT, whose own defaults are EDM's, takes the teacher's linear β and ε
    method = Plan(resolve_config(DEFAULT, {"models": {"ct": {"teacher": "ddpm/main"}}})).run_config(
        "digits", "ct", "main", 0)["method"]
    assert method["schedule"] == "linear" and method["precond"] == "eps"
