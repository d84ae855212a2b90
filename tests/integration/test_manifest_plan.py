"""The plan of HLS and DASH packages made by a real packager.

ffmpeg (Debian's) packages a generated test source (testsrc video and a
sine tone, 4 s) the ways an origin meets: HLS with TS segments, fMP4 with
EXT-X-MAP, byte-range single files (TS, and fMP4 whose EXT-X-MAP has a
BYTERANGE), a master with two video renditions and an audio group, AES-128
with a key file, DASH with SegmentTemplate and SegmentTimeline ($Number$
and $Time$), without a timeline, and with SegmentList ranges. For each, the
plan that build/probe_manifest (tests/tools/probe_manifest.c) prints for
the package's top manifest must list exactly the files ffmpeg wrote, each
once, media first and the top manifest last, and hand back the manifests'
bytes as they are on disk (the probe checks those).

ffmpeg 5.1's own quirks are handled where they appear, and each is checked
so that a change of ffmpeg shows: with -use_timeline 1, AAC priming makes
the first audio segment's $Time$ name disagree with the MPD's timeline
(-af asetpts=PTS+1024/SR/TB aligns it); with -use_timeline 0 ffmpeg may
write one audio chunk more than the MPD implies; -single_file 1 writes a
SegmentList of ranges, never SegmentBase; -var_stream_map with agroup also
lists the audio as a variant. The cases ffmpeg cannot make (I-frame
playlists, SegmentBase, $Time$ with r=-1, escapes out of the directory)
are hand-written in tests/unit/test_manifest.c.
"""
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(os.environ.get("PROBE_MANIFEST", str(REPO / "build" / "probe_manifest")))
FFMPEG = shutil.which("ffmpeg")
ORIGIN = "http://origin.test:8080"
# Liveness bounds only: each encode takes about a second on an idle machine.
FFMPEG_TIMEOUT = 300
PROBE_TIMEOUT = 60

SOURCE = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=4",
          "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=4"]
CODECS = ["-c:v", "libx264", "-g", "25", "-preset", "ultrafast", "-c:a", "aac"]
HLS_VOD = ["-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod"]
DASH = ["-map", "0:v", "-map", "1:a", "-f", "dash", "-seg_duration", "1"]
# AAC priming shifts the first audio segment by 1024 samples; this aligns
# the names ffmpeg writes with the timeline it writes.
ALIGN = ["-af", "asetpts=PTS+1024/SR/TB"]

# name: (top manifest, ffmpeg arguments after the source and codecs)
PACKAGES = {
    "hls_ts": ("index.m3u8", HLS_VOD + ["index.m3u8"]),
    "hls_fmp4": ("index.m3u8", HLS_VOD + ["-hls_segment_type", "fmp4",
                                          "-hls_fmp4_init_filename", "init.mp4", "index.m3u8"]),
    "hls_single_ts": ("index.m3u8", HLS_VOD + ["-hls_flags", "single_file", "index.m3u8"]),
    "hls_single_fmp4": ("index.m3u8", HLS_VOD + ["-hls_segment_type", "fmp4",
                                                 "-hls_flags", "single_file", "index.m3u8"]),
    "hls_master": ("master.m3u8", [
        "-filter_complex", "[0:v]split=2[v1][v2];[v2]scale=160:120[v2s]",
        "-map", "[v1]", "-map", "[v2s]", "-map", "1:a"] + HLS_VOD + [
        "-master_pl_name", "master.m3u8",
        "-var_stream_map", "v:0,agroup:aud v:1,agroup:aud a:0,agroup:aud,name:audio",
        "-hls_segment_filename", "stream_%v/seg%d.ts", "stream_%v/index.m3u8"]),
    "hls_aes": ("index.m3u8", HLS_VOD + ["-hls_key_info_file", "{keyinfo}", "index.m3u8"]),
    "dash_timeline_number": ("manifest.mpd", DASH + ALIGN + [
        "-use_template", "1", "-use_timeline", "1", "manifest.mpd"]),
    "dash_timeline_time": ("manifest.mpd", DASH + ALIGN + [
        "-use_template", "1", "-use_timeline", "1",
        "-media_seg_name", "chunk-$RepresentationID$-$Time$.m4s", "manifest.mpd"]),
    "dash_template": ("manifest.mpd", DASH + [
        "-use_template", "1", "-use_timeline", "0", "manifest.mpd"]),
    "dash_single_file": ("manifest.mpd", DASH + ["-single_file", "1", "manifest.mpd"]),
    "dash_unaligned_time": ("manifest.mpd", DASH + [
        "-use_template", "1", "-use_timeline", "1",
        "-media_seg_name", "chunk-$RepresentationID$-$Time$.m4s", "manifest.mpd"]),
    "hls_live": ("index.m3u8", ["-f", "hls", "-hls_time", "1",
                                "-hls_flags", "omit_endlist", "index.m3u8"]),
}


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """The origin's document root: one directory per package, under
    vod/, written by ffmpeg. The AES key info file lives outside the
    package (it is ffmpeg's input, not part of what is published)."""
    if not FFMPEG:
        pytest.fail("ffmpeg is missing: make deps-check installs it")
    if not (PROBE.is_file() and os.access(PROBE, os.X_OK)):
        pytest.fail(f"{PROBE} is missing: build it first (make build/probe_manifest)")
    root = tmp_path_factory.mktemp("origin")
    keys = tmp_path_factory.mktemp("keys")
    (keys / "keyinfo").write_text(f"enc.key\n{keys / 'enc.key'}\n")
    (keys / "enc.key").write_bytes(bytes(range(16)))
    for name, (_, args) in PACKAGES.items():
        d = root / "vod" / name
        d.mkdir(parents=True)
        args = [a.replace("{keyinfo}", str(keys / "keyinfo")) for a in args]
        cmd = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1"] + \
            SOURCE + CODECS + args
        r = subprocess.run(cmd, cwd=d, capture_output=True, timeout=FFMPEG_TIMEOUT)
        assert r.returncode == 0, f"ffmpeg for {name}: {r.stderr.decode(errors='replace')}"
    shutil.copy(keys / "enc.key", root / "vod" / "hls_aes" / "enc.key")
    return root


def plan(root, name, top=None):
    """(exit status, [(kind, path, url)], stderr) of the probe on a
    package's top manifest."""
    top = top or PACKAGES[name][0]
    r = subprocess.run([str(PROBE), f"{ORIGIN}/vod/{name}/{top}", str(root)],
                       capture_output=True, timeout=PROBE_TIMEOUT)
    rows = [tuple(line.split("\t")) for line in r.stdout.decode().splitlines()]
    return r.returncode, rows, r.stderr.decode(errors="replace")


def written(root, name):
    d = root / "vod" / name
    return {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()}


def planned(root, name):
    """The plan's paths, checked for what every plan holds: success, each
    path once, its URL the origin's, media before manifests, the top
    manifest last."""
    rc, rows, err = plan(root, name)
    assert rc == 0, f"{name}: {err}"
    paths = [p for _, p, _ in rows]
    assert len(paths) == len(set(paths)), f"{name}: a path planned twice: {paths}"
    for kind, path, url in rows:
        assert url == f"{ORIGIN}/vod/{name}/{path}"
    kinds = [k for k, _, _ in rows]
    assert kinds == sorted(kinds, key=lambda k: k != "F"), f"{name}: media after a manifest"
    assert rows[-1][:2] == ("M", PACKAGES[name][0])
    return rows


def mpd_segments(root, name):
    """For each Representation id of an MPD written with a template, the
    number of media segments its SegmentTimeline or duration implies."""
    ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
    mpd = ET.parse(root / "vod" / name / "manifest.mpd").getroot()
    out = {}
    for rep in mpd.iterfind(".//d:Representation", ns):
        tpl = rep.find("d:SegmentTemplate", ns)
        tl = tpl.find("d:SegmentTimeline", ns)
        if tl is not None:
            out[rep.get("id")] = sum(int(s.get("r", "0")) + 1 for s in tl.iterfind("d:S", ns))
        else:
            # PT4.0S over duration/timescale, rounded up.
            total = float(re.match(r"PT([\d.]+)S", mpd.get("mediaPresentationDuration"))[1])
            per = int(tpl.get("duration")) / int(tpl.get("timescale"))
            out[rep.get("id")] = -(-round(total * 1000) // round(per * 1000))
    return out


@pytest.mark.parametrize("name", ["hls_ts", "hls_fmp4", "hls_aes", "hls_single_ts",
                                  "hls_single_fmp4", "dash_single_file",
                                  "dash_timeline_number", "dash_timeline_time"])
def test_plan_lists_exactly_the_files_ffmpeg_wrote(packages, name):
    rows = planned(packages, name)
    assert {p for _, p, _ in rows} == written(packages, name)


def test_ts_package_is_its_segments_then_the_playlist(packages):
    rows = planned(packages, "hls_ts")
    text = (packages / "vod" / "hls_ts" / "index.m3u8").read_text()
    segments = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert [p for _, p, _ in rows] == segments + ["index.m3u8"]
    assert "#EXT-X-ENDLIST" in text


def test_fmp4_package_carries_its_init_section_first(packages):
    rows = planned(packages, "hls_fmp4")
    assert '#EXT-X-MAP:URI="init.mp4"' in (packages / "vod/hls_fmp4/index.m3u8").read_text()
    assert rows[0] == ("F", "init.mp4", f"{ORIGIN}/vod/hls_fmp4/init.mp4")


@pytest.mark.parametrize("name,single", [("hls_single_ts", "index.ts"),
                                         ("hls_single_fmp4", "index.m4s")])
def test_byte_range_segments_name_their_one_file_once(packages, name, single):
    text = (packages / "vod" / name / "index.m3u8").read_text()
    assert text.count("#EXT-X-BYTERANGE:") >= 4
    rows = planned(packages, name)
    assert [(k, p) for k, p, _ in rows] == [("F", single), ("M", "index.m3u8")]


def test_fmp4_single_file_map_with_byterange_is_the_same_file(packages):
    text = (packages / "vod/hls_single_fmp4/index.m3u8").read_text()
    assert re.search(r'#EXT-X-MAP:URI="index.m4s",BYTERANGE="\d+@0"', text)


def test_aes_package_carries_its_key(packages):
    text = (packages / "vod/hls_aes/index.m3u8").read_text()
    assert '#EXT-X-KEY:METHOD=AES-128,URI="enc.key"' in text
    rows = planned(packages, "hls_aes")
    assert ("F", "enc.key") in [(k, p) for k, p, _ in rows]


def test_master_with_renditions_and_audio_group(packages):
    name = "hls_master"
    text = (packages / "vod" / name / "master.m3u8").read_text()
    assert 'URI="stream_audio/index.m3u8"' in text
    # ffmpeg also lists the audio group's playlist as a variant: it is
    # planned once all the same.
    assert "\nstream_audio/index.m3u8" in text
    rows = planned(packages, name)
    assert {p for _, p, _ in rows} == written(packages, name)
    manifests = [p for k, p, _ in rows if k == "M"]
    assert sorted(manifests[:-1]) == ["stream_0/index.m3u8", "stream_1/index.m3u8",
                                      "stream_audio/index.m3u8"]
    assert manifests[-1] == "master.m3u8"


@pytest.mark.parametrize("name", ["dash_timeline_number", "dash_timeline_time",
                                  "dash_template"])
def test_dash_template_segments_are_those_the_mpd_implies(packages, name):
    rows = planned(packages, name)
    paths = {p for _, p, _ in rows}
    for rep, count in mpd_segments(packages, name).items():
        mine = [p for p in paths if re.fullmatch(rf"chunk-(stream)?{rep}-.*\.m4s", p)]
        assert len(mine) == count, f"{name} representation {rep}: {sorted(mine)}"
        assert f"init-stream{rep}.m4s" in paths


def test_dash_timeline_time_names_follow_the_timeline(packages):
    paths = [p for _, p, _ in planned(packages, "dash_timeline_time")]
    assert [p for p in paths if p.startswith("chunk-0-")] == \
        [f"chunk-0-{t}.m4s" for t in (0, 12800, 25600, 38400)]
    assert paths[paths.index("init-stream1.m4s") + 1] == "chunk-1-0.m4s"


def test_dash_template_without_timeline_may_leave_one_audio_chunk_unnamed(packages):
    """ffmpeg 5.1 -use_timeline 0 can write one audio chunk past what the
    MPD implies (4 s at 1 s a segment): that one file, and only it, is not
    planned."""
    name = "dash_template"
    rows = planned(packages, name)
    paths = {p for _, p, _ in rows}
    extra = written(packages, name) - paths
    assert paths <= written(packages, name)
    audio_last = max(int(m[1]) for p in paths if (m := re.fullmatch(r"chunk-stream1-(\d+)\.m4s", p)))
    assert extra <= {f"chunk-stream1-{audio_last + 1:05d}.m4s"}


def test_dash_timeline_without_priming_alignment_disagrees_only_on_first_audio_name(packages):
    """Without asetpts, ffmpeg names the first audio segment from its
    priming-shifted time (-1024) while the MPD's timeline starts at 0: the
    plan follows the MPD, as a player does."""
    name = "dash_unaligned_time"
    rows = planned(packages, name)
    paths = {p for _, p, _ in rows}
    on_disk = written(packages, name)
    assert paths - on_disk == {"chunk-1-0.m4s"}
    assert on_disk - paths == {"chunk-1--1024.m4s"}


def test_dash_single_file_is_a_segment_list_of_ranges_of_one_file_per_representation(packages):
    text = (packages / "vod/dash_single_file/manifest.mpd").read_text()
    assert "<SegmentList" in text and "mediaRange=" in text and "<SegmentBase" not in text
    rows = planned(packages, "dash_single_file")
    assert [(k, p) for k, p, _ in rows] == [("F", "manifest-stream0.mp4"),
                                            ("F", "manifest-stream1.mp4"),
                                            ("M", "manifest.mpd")]


def test_live_playlist_is_refused_with_its_reason(packages):
    assert "#EXT-X-ENDLIST" not in (packages / "vod/hls_live/index.m3u8").read_text()
    rc, rows, err = plan(packages, "hls_live")
    assert rc == 2 and rows == []
    assert "is live" in err and "EXT-X-ENDLIST" in err and "hls_live/index.m3u8" in err


def test_missing_media_playlist_fails_naming_it(packages, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(packages / "vod" / "hls_master", root / "vod" / "hls_master")
    (root / "vod/hls_master/stream_1/index.m3u8").unlink()
    rc, rows, err = plan(root, "hls_master")
    assert rc == 2 and rows == []
    assert "stream_1/index.m3u8" in err and "404" in err


def test_playlist_pointing_outside_its_directory_fails_naming_the_reference(packages, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(packages / "vod" / "hls_ts", root / "vod" / "hls_ts")
    p = root / "vod/hls_ts/index.m3u8"
    p.write_text(p.read_text().replace("\nindex2.ts", "\n../hls_fmp4/index2.m4s"))
    rc, rows, err = plan(root, "hls_ts")
    assert rc == 2 and rows == []
    assert '"../hls_fmp4/index2.m4s"' in err and "leaves the manifest's directory" in err
