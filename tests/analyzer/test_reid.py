"""Re-identification: linking rules, sample choice, scores, the missing extra, and
dlib's descriptor on a small fixture of faces."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from analyzer.reid import (
    DlibEmbedder,
    SourcePerson,
    TrackSamples,
    TrackSpan,
    link_across_sources,
    link_tracks,
    pairwise_scores,
)
from emotion_contract.extras import MissingExtra

from ..conftest import MEDIA

ROOT = Path(__file__).resolve().parents[2]


def _vectors(*points):
    return {i: np.array(p, dtype=float) for i, p in enumerate(points)}


def test_tracks_that_overlap_in_time_are_never_one_person():
    spans = [TrackSpan(0, 0, 5), TrackSpan(1, 3, 8), TrackSpan(2, 9, 10)]
    same = _vectors([0, 0], [0, 0], [0, 0])
    persons = link_tracks(spans, same, threshold=0.5)
    assert persons[0] != persons[1]  # on screen together
    assert persons[2] in (persons[0], persons[1])


def test_threshold_and_complete_linkage():
    spans = [TrackSpan(i, 2 * i, 2 * i + 1) for i in range(3)]
    chain = _vectors([0, 0], [0.4, 0], [0.8, 0])  # a-b 0.4, b-c 0.4, a-c 0.8
    persons = link_tracks(spans, chain, threshold=0.5)
    assert len(set(persons.values())) == 2  # a-c too far: not all three
    assert len(set(link_tracks(spans, chain, threshold=0.3).values())) == 3
    assert len(set(link_tracks(spans, chain, threshold=0.9).values())) == 1
    assert persons[0] == 0  # numbered by first appearance
    assert link_tracks(spans, {}, threshold=0.5) == {}


def test_persons_link_across_sources_but_never_within_one():
    a, b = [0.0, 0.0], [1.0, 0.0]
    persons = [
        SourcePerson("one.mp4", 0, np.array([a, [0.1, 0]])),  # A in two tracks
        SourcePerson("one.mp4", 1, np.array([b])),
        SourcePerson("two.mp4", 0, np.array([b])),  # B first here
        SourcePerson("two.mp4", 1, np.array([[0.05, 0]])),
        SourcePerson("three.mp4", 0, np.array([[0.3, 0]])),  # near A and nobody else
    ]
    ids = link_across_sources(persons, threshold=0.35)
    assert ids == [0, 1, 1, 0, 0]  # numbered by first appearance in the given order
    # Complete linkage: three.mp4's person is 0.3 from A's farthest track, so a
    # threshold of 0.25 keeps it apart.
    assert link_across_sources(persons, threshold=0.25) == [0, 1, 1, 0, 2]
    # Two persons of one source stay apart however close they are.
    twins = [SourcePerson("one.mp4", i, np.array([a])) for i in range(2)]
    assert link_across_sources(twins, threshold=1.0) == [0, 1]
    assert link_across_sources([], threshold=0.5) == []


def test_samples_are_large_sure_and_apart():
    from analyzer.faces import Faces

    image = np.zeros((400, 400, 3), np.uint8)
    samples = TrackSamples(k=3, min_gap_s=0.5)
    offers = [  # time, side, score
        (0.0, 100, 0.99),
        (0.1, 120, 0.99),  # replaces the one 0.1 s before: larger
        (0.2, 50, 0.99),  # near the 0.1 s one and smaller: not kept
        (1.0, 90, 0.9),
        (2.0, 80, float("nan")),  # no detector score (a carried box)
        (3.0, 40, 0.9),  # small, but there is room for a third
        (4.0, 95, 0.95),  # better than the worst kept (3.0 s): replaces it
    ]
    for t, side, score in offers:
        box = np.array([[10, 10, 10 + side, 10 + side]], np.float32)
        samples.offer(image, t, Faces(box, [score], [7]))
    kept = samples.kept[7]
    assert sorted(round(t, 1) for _, t, _, _ in kept) == [0.1, 1.0, 4.0]
    for _, _, crop, box in kept:  # a crop with context around the face
        x1, y1, x2, y2 = box
        assert crop.shape[0] > y2 - y1 and 0 <= x1 < x2 <= crop.shape[1]


def test_pairwise_scores():
    truth = {1: "A", 2: "A", 3: "B"}
    assert pairwise_scores({1: 0, 2: 0, 3: 1}, truth) == {
        "tracks": 3,
        "precision": 1.0,
        "recall": 1.0,
    }
    merged = pairwise_scores({1: 0, 2: 0, 3: 0}, truth)
    assert merged["precision"] == pytest.approx(1 / 3) and merged["recall"] == 1.0


def test_without_the_extra_the_error_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)
    with pytest.raises(MissingExtra, match=r"emotion-analytics\[reid\]"):
        DlibEmbedder()


@pytest.fixture(scope="module")
def face_fixture():
    """The sample photo's face, with its box from the shipped detector."""
    pytest.importorskip("dlib", reason="the [reid] extra is not installed")
    from analyzer.config import AnalyzerConfig
    from analyzer.runtime import Runtime

    image = cv2.imread(str(ROOT / "samples" / "astronaut.jpg"))
    faces = Runtime.create(AnalyzerConfig(detector="mtcnn")).detector.detect([image])
    return image, faces[0].boxes[:1]


@pytest.mark.slow
def test_one_face_stays_close_under_mirroring_and_darkening(face_fixture):
    image, box = face_fixture
    embedder = DlibEmbedder()
    base = embedder.embed(image, box)[0]
    w = image.shape[1]
    mirrored_box = box.copy()
    mirrored_box[:, [0, 2]] = w - box[:, [2, 0]]
    mirrored = embedder.embed(image[:, ::-1].copy(), mirrored_box)[0]
    darker = embedder.embed((image * 0.5).astype(np.uint8), box)[0]
    assert base.shape == (128,)
    assert np.linalg.norm(base - mirrored) < 0.5
    assert np.linalg.norm(base - darker) < 0.5
    if MEDIA.is_dir():  # another person: woman2.mp4's first frame
        from analyzer.sources import VideoInfo, iter_video

        frame = next(iter_video(MEDIA / "woman2.mp4", VideoInfo(), sample_fps=None))
        from analyzer.config import AnalyzerConfig
        from analyzer.runtime import Runtime

        other = (
            Runtime.create(AnalyzerConfig(detector="mtcnn"))
            .detector.detect([frame.image])[0]
            .boxes[:1]
        )
        assert np.linalg.norm(base - embedder.embed(frame.image, other)[0]) > 0.6


def test_tables_carry_person_and_persons_parquet(tmp_path, tiny_model):
    import pandas as pd

    from analyzer.batch import run
    from emotion_contract.schema import PERSON_SCHEMA

    from ..helpers import moving_blob_video
    from .test_pipeline import make_runtime

    root = tmp_path / "in"
    root.mkdir()
    moving_blob_video(root / "clip.mp4", 20)
    out = tmp_path / "out"
    run([root], out, make_runtime(tiny_model, reid="none"), progress=False)
    faces = pd.read_parquet(out / "faces")
    assert "person" in faces and faces.person.isna().all()
    assert pd.read_parquet(out / "tracks.parquet").person.isna().all()
    persons = pd.read_parquet(out / "persons.parquet")
    assert list(persons.columns) == PERSON_SCHEMA.names and persons.empty
    from reports import render

    render(out)
    (page,) = (out / "report").glob("v-*.html")
    assert 'id="person-' not in page.read_text()  # nothing linked: tracks only


def test_auto_without_the_extra_turns_reid_off_once(monkeypatch, tiny_model, caplog):
    from analyzer.config import AnalyzerConfig
    from analyzer.runtime import Runtime

    monkeypatch.setitem(sys.modules, "dlib", None)
    config = AnalyzerConfig(model=tiny_model, detector="fake")
    with caplog.at_level("WARNING"):
        runtime = Runtime.create(config)
    assert runtime.embedder is None and runtime.reid_name is None
    warnings = [r for r in caplog.records if "re-identification is off" in r.message]
    assert len(warnings) == 1 and "emotion-analytics[reid]" in warnings[0].message
    with pytest.raises(MissingExtra):
        Runtime.create(AnalyzerConfig(model=tiny_model, detector="fake", reid="dlib"))


@pytest.mark.slow
@pytest.mark.skipif(not MEDIA.is_dir(), reason="../shared/media absent")
@pytest.mark.parametrize("every_frame", [False, True])
def test_cuts_tracks_link_to_the_right_people(tmp_path, every_frame):
    pytest.importorskip("dlib", reason="the [reid] extra is not installed")
    import json
    import shutil

    import pandas as pd

    from analyzer.batch import run
    from analyzer.config import AnalyzerConfig
    from analyzer.runtime import Runtime

    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(MEDIA / "cuts.mp4", root)
    config = AnalyzerConfig(sample_fps=None) if every_frame else AnalyzerConfig()
    run([root], tmp_path / "out", Runtime.create(config), progress=False)
    tracks = pd.read_parquet(tmp_path / "out" / "tracks.parquet")
    truth = json.loads((MEDIA / "cuts.json").read_text())
    people = {}
    for row in tracks.itertuples():
        middle = (row.first_s + row.last_s) / 2
        for seg in truth["segments"]:
            if seg["start_s"] <= middle < seg["end_s"] and seg["person"]:
                people[row.track_id] = seg["person"]
    predicted = {r.track_id: int(r.person) for r in tracks.itertuples()}
    scores = pairwise_scores(predicted, people)
    assert scores["tracks"] >= 7
    assert scores["precision"] == 1.0 and scores["recall"] == 1.0
    persons = pd.read_parquet(tmp_path / "out" / "persons.parquet")
    assert len(persons) == 2 and persons.tracks.sum() == len(tracks)
    from reports import render

    index = render(tmp_path / "out").read_text()
    assert '<td class="num" data-sort="2">2</td>' in index  # persons per video
    (page,) = (tmp_path / "out" / "report").glob("v-*.html")
    html = page.read_text()
    assert 'id="person-0"' in html and 'id="person-1"' in html


@pytest.mark.slow
@pytest.mark.skipif(not MEDIA.is_dir(), reason="../shared/media absent")
def test_embeddings_are_written_only_when_asked(tmp_path):
    pytest.importorskip("dlib", reason="the [reid] extra is not installed")
    import shutil

    import pandas as pd

    from analyzer.batch import run
    from analyzer.config import AnalyzerConfig
    from analyzer.runtime import Runtime

    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(MEDIA / "cuts.mp4", root)
    out = tmp_path / "out"
    run([root], out, Runtime.create(AnalyzerConfig()), progress=False)
    assert not list(out.glob("embeddings/*.parquet"))  # the default writes none
    asked = Runtime.create(AnalyzerConfig(save_embeddings=True))
    run([root], out, asked, progress=False)
    vectors = pd.read_parquet(out / "embeddings")
    tracks = pd.read_parquet(out / "tracks.parquet")
    assert len(vectors) == len(tracks) and len(vectors.embedding[0]) == 128
    merged = vectors.merge(tracks, on=["source", "track_id"])
    assert (merged.person_x == merged.person_y).all()
    run([root], out, Runtime.create(AnalyzerConfig()), progress=False)
    assert not list(out.glob("embeddings/*.parquet"))  # not asked: removed


def test_save_embeddings_needs_reid(tmp_path):
    from analyzer.cli import main

    (tmp_path / "in").mkdir()
    code = main(
        [
            str(tmp_path / "in"),
            "--out",
            str(tmp_path / "o"),
            "--reid",
            "none",
            "--save-embeddings",
            "-q",
        ]
    )
    assert code == 2


def test_link_across_sources_needs_save_embeddings(tmp_path, capsys):
    from analyzer.cli import main
    from analyzer.config import AnalyzerConfig

    (tmp_path / "in").mkdir()
    args = [str(tmp_path / "in"), "--out", str(tmp_path / "o"), "-q"]
    assert main([*args, "--link-across-sources"]) == 2
    assert "needs --save-embeddings" in capsys.readouterr().err
    with pytest.raises(ValueError, match="needs --save-embeddings"):
        AnalyzerConfig(link_across_sources=True)


@pytest.mark.slow
@pytest.mark.skipif(not MEDIA.is_dir(), reason="../shared/media absent")
def test_one_person_id_across_the_videos_of_a_run(tmp_path):
    """woman2.mp4 and phone_street.mp4 are the two people of cuts.mp4 (cuts.json
    says which shot comes from which file): with --link-across-sources every
    track of the three files gets its person's one id; without, ids are per file
    again, and switching reuses the analyzed parts."""
    pytest.importorskip("dlib", reason="the [reid] extra is not installed")
    import json
    import shutil

    import pandas as pd

    from analyzer.batch import run
    from analyzer.config import AnalyzerConfig
    from analyzer.runtime import Runtime

    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    for name in ("cuts.mp4", "woman2.mp4", "phone_street.mp4"):
        shutil.copy(MEDIA / name, root)
    truth = json.loads((MEDIA / "cuts.json").read_text())
    people = {"woman2.mp4": "A", "phone_street.mp4": "B"}

    def person_of(row) -> str | None:
        if row.source != "cuts.mp4":
            return people[row.source]
        middle = (row.first_s + row.last_s) / 2
        for seg in truth["segments"]:
            if seg["start_s"] <= middle < seg["end_s"]:
                return seg["person"]
        return None

    def analyze(link: bool):
        config = AnalyzerConfig(save_embeddings=True, link_across_sources=link)
        summary = run([root], out, Runtime.create(config), progress=False)
        tracks = pd.read_parquet(out / "tracks.parquet")
        return summary, tracks

    summary, tracks = analyze(link=True)
    keys = {(r.source, r.track_id): i for i, r in enumerate(tracks.itertuples())}
    truth_by = {keys[r.source, r.track_id]: person_of(r) for r in tracks.itertuples()}
    predicted = {i: int(p) for i, p in enumerate(tracks.person)}
    scores = pairwise_scores(predicted, {k: v for k, v in truth_by.items() if v})
    assert scores["tracks"] >= 9
    assert scores["precision"] == 1.0 and scores["recall"] == 1.0
    assert tracks.person.nunique() == 2
    faces = pd.read_parquet(out / "faces")
    merged = faces.merge(tracks, on=["source", "track_id"])
    assert (merged.person_x == merged.person_y).all()  # faces/ says the same
    vectors = pd.read_parquet(out / "embeddings").merge(
        tracks, on=["source", "track_id"]
    )
    assert (vectors.person_x == vectors.person_y).all()
    persons = pd.read_parquet(out / "persons.parquet")
    assert sorted(persons.groupby("person").source.nunique()) == [2, 2]
    facts = json.loads((out / "run.json").read_text())
    assert facts["link_across_sources"] is True and facts["complete"] is True

    from reports import render

    index = render(out).read_text()
    assert 'id="run-person-0"' in index and 'id="run-person-1"' in index
    assert index.count("cuts.mp4</a>") >= 3  # its row and both people's

    summary, per_file = analyze(link=False)
    assert summary.reused == 3 and summary.relabeled >= 1  # relabeled, not analyzed
    for _, rows in per_file.groupby("source"):
        assert sorted(rows.person.unique()) == list(range(rows.person.nunique()))
    faces = pd.read_parquet(out / "faces").merge(per_file, on=["source", "track_id"])
    assert (faces.person_x == faces.person_y).all()
    summary, again = analyze(link=True)
    assert summary.reused == 3
    assert again.person.tolist() == tracks.person.tolist()

    # A run stopped after rewriting embeddings/ but before faces/: the next run
    # sees the stale file and mends it.
    from analyzer.records import _replace_person_column

    (stale,) = (out / "embeddings").glob("phone_street*.parquet")
    _replace_person_column(stale, {0: 99})
    summary, _ = analyze(link=True)
    assert summary.relabeled == 1
    vectors = pd.read_parquet(out / "embeddings").merge(
        tracks, on=["source", "track_id"]
    )
    assert (vectors.person_x == vectors.person_y).all()
