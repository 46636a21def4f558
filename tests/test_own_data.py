"""params/own_data_example.yaml: pems08_tail_cpu's model and training, a `file` data block that reads the
formats of docs/data.md (files generated here, none shipped)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml

from stlib.config import load_profile
from stlib.data import from_config
from stlib.paths import REPO_ROOT

EXAMPLE = REPO_ROOT / "params" / "own_data_example.yaml"
CPU = REPO_ROOT / "params" / "pems08_tail_cpu.yaml"


def test_only_the_data_block_differs_from_the_cpu_profile():
    mine = yaml.safe_load(EXAMPLE.read_text())
    assert mine["base"] == CPU.name and set(mine) == {"profile", "base", "data", "notebooks"}  # by reference
    profile, cpu = load_profile(EXAMPLE), load_profile(CPU)  # validates the base and every preset
    assert profile.presets == cpu.presets and profile.notebooks == {}
    assert profile.run_config().data.name == "file" and profile.name == "own_data_example"
    for preset in [None, *cpu.presets]:
        a, b = profile.run_config(preset=preset), cpu.run_config(preset=preset)
        assert a.model == b.model and a.train == b.train


def test_the_example_reads_the_readme_formats(tmp_path):
    """A timestamped CSV (sensor ids in the header, an empty cell) and an edge list by sensor id."""
    ids = ["400001", "400017", "400030"]
    stamps = pd.date_range("2017-01-01", periods=300, freq="5min")
    rng = np.random.default_rng(0)
    rows = ["time," + ",".join(ids)]
    for t in stamps:
        rows.append(f"{t:%Y-%m-%d %H:%M}," + ",".join(f"{v:.1f}" for v in rng.uniform(40, 120, len(ids))))
    rows[1] = rows[1].rsplit(",", 1)[0] + ","  # an empty cell: a missing reading
    (tmp_path / "flow.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "edges.csv").write_text("from,to,cost\n400001,400017,0.8\n400017,400030,1.2\n")
    cfg = load_profile(EXAMPLE).run_config(
        overrides=[f"data.path={tmp_path / 'flow.csv'}", f"data.edges={tmp_path / 'edges.csv'}"]
    )
    ds = from_config(cfg.data)
    assert ds.sensor_ids == ids and ds.interval_minutes == 5 and ds.start_time == stamps[0]
    assert ds.edges.values.tolist() == [[0, 1, 0.8], [1, 2, 1.2]]
    assert ds.marked_missing == 1 and ds.series[0, 2, 0] == 0
    assert ds.value_label == "flow (vehicles/5 min)"
    n = 300 - 24 + 1
    assert [len(ds.splits[k]) for k in ("train", "val", "test")] == [
        int(n * 0.7),
        int(n * 0.8) - int(n * 0.7),
        n - int(n * 0.8),
    ]


def test_the_cpu_route_presets_train_unchanged_on_other_data(tmp_path):
    """The chosen stage-1 and stage-2 configurations depend on no dataset: with only the data block changed
    (here a small synthetic graph), each builds, trains an epoch and scores finite metrics."""
    from stlib.train import fit

    profile = load_profile(CPU)
    data = ["data.name=synthetic", "data.num_sensors=6", "data.num_days=3"]
    for preset in (
        "stage1_cpu_start",
        "stage1_cpu",
        "stage2_cpu",
        "stage2_stid",
        "stage2_stid_temporal",
        "stid_converged",
        "stage2_converged",
        "stage2_converged_temporal",
    ):
        full = profile.run_config(preset=preset)
        # one epoch; a preset that trains STID's path alone first gets one such epoch and one of the whole model
        stem = getattr(full.model, "stem_epochs", 0)
        epochs = ["train.epochs=2", "model.stem_epochs=1"] if stem else ["train.epochs=1"]
        cfg = profile.run_config(
            preset=preset, overrides=[*data, *epochs, "train.quiet=true", "train.save_checkpoint=false"]
        )
        assert cfg.model.model_dump(exclude={"stem_epochs"}) == full.model.model_dump(exclude={"stem_epochs"})
        run = fit(cfg, out_root=tmp_path)
        assert np.isfinite(run.metrics["test"]["mae"]) and run.metrics["dataset"] == "synthetic"


# ---------------------------------------------------------------------------------------------
# CSV quirks of other locales and spreadsheets (issue 28): read right, or one line saying what to set

STAMPS = ["2024-01-01 00:00", "2024-01-01 00:05", "2024-01-01 00:10"]
VALUES = [[71.5, 1234.0, 0.25], [70.0, 1200.5, ""], [69.25, 1190.0, 0.5]]  # "" = a missing reading
PLAIN = "time,400001,400017,400030\n" + "".join(
    f"{t}," + ",".join(str(v) for v in row) + "\n" for t, row in zip(STAMPS, VALUES)
)


def _variant(sep=",", decimal=".", eol="\n", quote=False):
    """PLAIN written with another field separator, decimal mark, line end or every cell quoted."""
    q = (lambda v: f'"{v}"') if quote else str
    cell = lambda v: q(str(v).replace(".", decimal))  # noqa: E731
    lines = [sep.join(map(q, ["time", "400001", "400017", "400030"]))]
    lines += [sep.join([q(t), *map(cell, row)]) for t, row in zip(STAMPS, VALUES)]
    return eol.join(lines) + eol


def _read(tmp_path, text, name="flow.csv", encoding="utf-8"):
    from stlib.data.files import read_series

    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return read_series(path)


CSV_VARIANTS = {
    "european": _variant(";", ","),  # Excel in a German/French locale
    "semicolon_points": _variant(";", "."),
    "tab_commas": _variant("\t", ","),
    "tab_points": _variant("\t", "."),
    "excel_sep_line": "sep=;\n" + _variant(";", ","),  # Excel's hint line
    "bom": "\ufeff" + PLAIN,  # 'CSV UTF-8' from Excel
    "crlf": _variant(eol="\r\n"),
    "quoted": _variant(quote=True),
    "quoted_european": _variant(";", ",", quote=True),
    "header_spaces": PLAIN.replace(",400017,", ", 400017 ,"),
    "trailing_empty_rows": _variant(";", ",") + ";;;\n;;;\n",  # Excel's empty rows at the end
}


@pytest.mark.parametrize("name", list(CSV_VARIANTS))
def test_csv_quirks_read_as_the_plain_file(tmp_path, name):
    ref = _read(tmp_path, PLAIN, "plain.csv")
    sf = _read(tmp_path, CSV_VARIANTS[name])
    assert sf.sensors == ["400001", "400017", "400030"] and sf.times.equals(ref.times)
    np.testing.assert_array_equal(sf.values, ref.values)
    assert sf.dropped_rows == (2 if name == "trailing_empty_rows" else 0) and sf.dropped_columns == 0


def test_utf16_tab_file_from_excel_unicode_text(tmp_path):
    """Excel's 'Unicode Text': UTF-16 with a byte-order mark, tab-separated, decimal commas in some locales."""
    sf = _read(tmp_path, _variant("\t", ",", "\r\n"), "u.csv", encoding="utf-16")
    np.testing.assert_array_equal(sf.values, _read(tmp_path, PLAIN, "plain.csv").values)


def test_european_file_trains_with_its_ids_and_calendar(tmp_path):
    path = tmp_path / "flow.csv"
    rows = ["time;400001;400017"] + [
        f"{t:%Y-%m-%d %H:%M};{50 + i % 7},5;{60 + i % 5},25"
        for i, t in enumerate(pd.date_range("2024-01-01", periods=300, freq="5min"))
    ]
    path.write_text("\n".join(rows) + "\n")
    (tmp_path / "edges.csv").write_text("from,to,cost\n400001,400017,0.8\n")
    ds = from_config(
        load_profile(EXAMPLE).run_config(overrides=[f"data.path={path}", f"data.edges={tmp_path / 'edges.csv'}"]).data
    )
    assert ds.sensor_ids == ["400001", "400017"] and ds.interval_minutes == 5
    assert ds.series[0, :, 0].tolist() == [50.5, 60.25] and ds.edges.values.tolist() == [[0, 1, 0.8]]


def test_bom_never_makes_the_first_data_line_a_header(tmp_path):
    sf = _read(tmp_path, "\ufeff1.5,2.5\n3.5,4.5\n")  # before: a header '1.5','2.5' and one data row
    assert sf.sensors is None and sf.values[:, :, 0].tolist() == [[1.5, 2.5], [3.5, 4.5]]
    sf = _read(tmp_path, "\ufeff1,5;2,5\n3,5;4,5\n")  # no header, European
    assert sf.sensors is None and sf.values[:, :, 0].tolist() == [[1.5, 2.5], [3.5, 4.5]]


@pytest.mark.parametrize("header", ["time,400001,400017,400001", "time,400001,400017, 400001 "])
def test_duplicate_sensor_id_names_both_columns(tmp_path, header):
    with pytest.raises(ValueError, match=r"flow\.csv: columns 2 and 4 of the header both name sensor '400001'"):
        _read(tmp_path, header + "\n2024-01-01 00:00,1,2,3\n")  # before: a made-up sensor '400001.1'


@pytest.mark.parametrize("where", ["every_line", "data_lines", "spacer_column", "no_header", "european_data_lines"])
def test_unnamed_empty_columns_are_dropped_and_counted(tmp_path, where):
    text = {
        "every_line": PLAIN.replace("\n", ",\n"),  # before: a sensor 'Unnamed: 4' with no readings
        "data_lines": PLAIN.replace("\n", ",\n").replace("400030,\n", "400030\n"),  # before: times lost
        "spacer_column": PLAIN.replace("time,", "time,,")
        .replace(":00,", ":00,,")
        .replace(":05,", ":05,,")
        .replace(":10,", ":10,,"),
        "no_header": "1.5,2.5,\n3.5,,\n",
        "european_data_lines": _variant(";", ",").replace("\n", ";\n").replace("400030;\n", "400030\n"),
    }[where]
    sf = _read(tmp_path, text)
    assert sf.dropped_columns == 1
    if where == "no_header":
        assert sf.values[:, :, 0].tolist()[0] == [1.5, 2.5] and sf.values.shape == (2, 2, 1)
    else:
        ref = _read(tmp_path, PLAIN, "plain.csv")
        assert sf.sensors == ref.sensors and sf.times.equals(ref.times)
        np.testing.assert_array_equal(sf.values, ref.values)


def test_cells_missing_at_the_end_of_a_row_are_missing_readings(tmp_path):
    sf = _read(tmp_path, "time,a,b,c\n2024-01-01 00:00,1,2\n2024-01-01 00:05,1,2,3\n")  # the first row short
    assert sf.sensors == ["a", "b", "c"] and np.isnan(sf.values[0, 2, 0]) and sf.values[1, 2, 0] == 3


BAD_CSV = {
    "unnamed_with_readings": ("time,a,b,\n2024-01-01 00:00,1,2,3\n", r"column 4 has readings but no sensor id"),
    "thousands": ("time;a;b\n2024-01-01 00:00;1.234,5;2\n", r"'1\.234,5' in column 'a' \(data row 1\); .*no thousands"),
    "mixed_marks": (
        "time;a;b\n2024-01-01 00:00;1.5;2,5\n",
        r"'2,5' in column 'b' \(data row 1\); write numbers with one",
    ),
    "ambiguous": ("a,b;c\nx,y;z\n", r"ambiguous CSV: the first lines split evenly by ',' and ';'"),
    "latin1": ("time,Straße\n2024-01-01 00:00,1\n".encode("latin-1"), r"not UTF-8 text .*save it as UTF-8"),
}


@pytest.mark.parametrize("name", list(BAD_CSV))
def test_csv_quirks_that_are_refused_in_one_line(tmp_path, name):
    text, fragment = BAD_CSV[name]
    with pytest.raises(ValueError, match=fragment) as e:
        _read(tmp_path, text)
    assert str(tmp_path / "flow.csv") in str(e.value) and "\n" not in str(e.value)


def test_info_counts_what_the_reader_dropped(tmp_path):
    from stlib.data import load_dataset

    times = pd.date_range("2024-01-01", periods=100, freq="5min").strftime("%Y-%m-%d %H:%M")
    lines = ["time,a,b,"] + [f"{t},{i % 7 + 1},{i % 5 + 2}," for i, t in enumerate(times)] + [",,,", ",,,"]
    path = tmp_path / "flow.csv"
    path.write_text("\n".join(lines) + "\n")
    s = load_dataset("file", path=str(path)).summary()
    assert (s["dropped_empty_columns"], s["dropped_empty_rows"], s["shape"]) == (1, 2, [100, 2, 1])


def _berlin_csv(path, extra=None):
    """200 quarter-hours across the spring daylight-saving switch, ISO 8601 times with their UTC offsets."""
    t = pd.date_range("2024-03-30", periods=200, freq="15min", tz="Europe/Berlin")
    stamps = t.strftime("%Y-%m-%dT%H:%M:%S%z").str.replace(r"(\d\d)(\d\d)$", r"\1:\2", regex=True)
    df = pd.DataFrame({"time": stamps, "a": np.arange(200) % 9 + 1.0, "b": np.arange(200) % 5 + 1.0})
    (extra or (lambda d: d))(df).to_csv(path, index=False)
    return t


def test_offsets_across_a_daylight_saving_switch_read_as_utc_and_info_says_so(tmp_path):
    from stlib.data import load_dataset

    t = _berlin_csv(tmp_path / "dst.csv")  # before: refused with pandas' advice to pass utc=True
    ds = load_dataset("file", path=str(tmp_path / "dst.csv"))
    assert ds.timestamps[0] == t[0].tz_convert("UTC").tz_localize(None) and ds.time_gaps == 0
    assert ds.summary()["time_zone"] == "UTC (the file's offsets +01:00, +02:00 change)"


@pytest.mark.parametrize(
    "case, change, words",
    [
        ("dark_sensor", lambda d: d.assign(c=np.nan), "sensor 'c' has no reading at all (1 such sensor)"),
        (
            "too_large",
            lambda d: d.assign(a=d["a"].where(d.index != 5, 1e39)),
            "value too large 1e+39 (1 such cell) for float32",
        ),
    ],
)
def test_a_dark_sensor_or_a_value_beyond_float32_is_one_line(tmp_path, case, change, words):
    from stlib.data import load_dataset

    _berlin_csv(tmp_path / f"{case}.csv", change)  # before: trained (no readings) / read as a constant series
    with pytest.raises(ValueError, match=re.escape(words)):
        load_dataset("file", path=str(tmp_path / f"{case}.csv"))


def test_the_documented_missing_tokens_are_missing_and_counted_by_text(tmp_path):
    from stlib.data import load_dataset
    from stlib.data.files import MISSING_TOKENS

    times = pd.date_range("2024-01-01", periods=100, freq="5min").strftime("%Y-%m-%d %H:%M")
    marks = ["", "NA", "#N/A", "null", "n/a"]  # before: pandas' own list, uncounted ('<NA>', '-nan', '1.#IND' too)
    lines = ["time,a,b"] + [f"{t},{marks[i % 5] if i % 4 == 0 else 3},{i % 5 + 2}" for i, t in enumerate(times)]
    path = tmp_path / "flow.csv"
    path.write_text("\n".join(lines) + "\n")
    ds = load_dataset("file", path=str(path))
    assert ds.summary()["missing_tokens"] == {"(empty)": 5, "NA": 5, "n/a": 5, "#N/A": 5, "null": 5}
    assert ds.marked_missing == 25 and set(marks) <= set(MISSING_TOKENS)


@pytest.mark.parametrize("token", ["<NA>", "-nan", "1.#IND", "-", "n.a."])
def test_a_missing_mark_outside_the_documented_set_is_refused_naming_the_set(tmp_path, token):
    text = f"time,a,b\n2024-01-01 00:00,1,2\n2024-01-01 00:05,{token},2\n"  # before: '<NA>' ... read as missing
    with pytest.raises(ValueError, match=re.escape(f"{token!r} in column 'a' (data row 2)")) as e:
        _read(tmp_path, text)
    assert "one of NA N/A n/a #N/A NaN nan NULL null None" in str(e.value)


def test_info_is_strict_json_with_null_for_a_non_finite_statistic(tmp_path, capsys):
    import json

    from stlib.data.__main__ import main
    from stlib.data.core import finite

    assert finite(float("nan")) is None and finite(np.float32("inf")) is None and finite(np.float32(2.5)) == 2.5
    _berlin_csv(tmp_path / "ok.csv")
    assert main(["info", "file", "--opt", f"path={tmp_path / 'ok.csv'}"]) == 0
    out = capsys.readouterr().out
    json.loads(out, parse_constant=lambda c: pytest.fail(f"info printed {c}, not JSON"))


EDGE_FILES = {  # the graph of sensors s1 and s2, written in other locales; before: ';' files were not read as such
    "list_semicolon_commas": "from;to;cost\ns1;s2;1,5\ns2;s1;2,5\n",
    "list_tab_points": "from\tto\tcost\ns1\ts2\t1.5\ns2\ts1\t2.5\n",
    "list_excel_sep_line": "sep=;\nfrom;to;cost\ns1;s2;1,5\ns2;s1;2,5\n",
    "matrix_semicolon_commas": "0;1,5\n2,5;0\n",
    "labelled_matrix_semicolon_commas": "s1;s2\n0;1,5\n2,5;0\n",
    "list_bom": "\ufefffrom,to,cost\ns1,s2,1.5\ns2,s1,2.5\n",
}


@pytest.mark.parametrize("name", list(EDGE_FILES))
def test_edge_files_in_other_locales_read_as_the_plain_list(tmp_path, name):
    from stlib.data.graphs import read_graph

    path = tmp_path / "edges.csv"
    path.write_text(EDGE_FILES[name], encoding="utf-8")
    edges = read_graph(path, 2, ["s1", "s2"])
    assert edges.to_dict("list") == {"from": [0, 1], "to": [1, 0], "cost": [1.5, 2.5]}
