"""How video files are decoded for the writers: which stream is read, its frame count, pixel
aspect, transparency, HDR, interlacing, and sizes the cap shrinks too far. Real videos made
with PyAV."""
import fractions
import json

import numpy as np
import pytest

from writers.video_common import reading_warnings
from writers.video_segments import file_table
from writers.video_source import VideoError, VideoReader
from writers.write_video_frames import write_video_frames
from writers.write_video_pairs import write_video_pairs


def grey_frames(count, width, height):
    return [np.full((height, width, 3), 40 + 5 * i, np.uint8) for i in range(count)]


def encode_into(container, stream, frames, fmt='rgb24'):
    for frame in frames:
        for packet in stream.encode(av_frame(frame, fmt)):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def av_frame(pixels, fmt):
    import av

    return av.VideoFrame.from_ndarray(pixels, format=fmt)


def h264_stream(container, width, height, **context):
    stream = container.add_stream('libx264', rate=25)
    stream.width, stream.height, stream.pix_fmt = width, height, 'yuv420p'
    for name, value in context.items():
        setattr(stream.codec_context, name, value)
    return stream


def cover_stream(container):
    """An attached picture (cover art) stream; :func:`add_cover` writes its one PNG."""
    from av.stream import Disposition

    cover = container.add_stream('png', rate=1)
    cover.width, cover.height, cover.pix_fmt = 64, 64, 'rgb24'
    cover.disposition = Disposition.attached_pic
    return cover


def add_cover(container, cover):
    encode_into(container, cover, [np.zeros((64, 64, 3), np.uint8)])


def audio_stream(container):
    return container.add_stream('aac', rate=8000, layout='mono')


def add_silence(container, audio, seconds):
    import av

    for k in range(int(seconds * 8000) // 1024):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format='fltp',
                                           layout='mono')
        frame.sample_rate, frame.pts = 8000, k * 1024
        for packet in audio.encode(frame):
            container.mux(packet)
    for packet in audio.encode():
        container.mux(packet)


@pytest.fixture(scope='module')
def videos(module_tmp):
    import av

    root = module_tmp.mktemp('decoding')
    paths = {}

    def path(name):
        paths[name.split('.')[0]] = str(root / name)
        return paths[name.split('.')[0]]

    # the cap shrinks 1024x16 to 512x8 (16 to 16x0); 64x64 stays at least 16 px a side
    for name, (width, height) in (('wide.mp4', (1024, 16)), ('square.mp4', (64, 64))):
        with av.open(path(name), 'w') as out:
            encode_into(out, h264_stream(out, width, height), grey_frames(12, width, height))
    with av.open(path('cover_only.mp4'), 'w') as out:
        audio, cover = audio_stream(out), cover_stream(out)
        add_cover(out, cover)
        add_silence(out, audio, 2)
    with av.open(path('cover_first.mp4'), 'w') as out:      # cover art is video stream 0
        cover, video = cover_stream(out), h264_stream(out, 160, 96)
        add_cover(out, cover)
        encode_into(out, video, grey_frames(10, 160, 96))
    with av.open(path('long_audio.mkv'), 'w') as out:       # 1.2 s of video, 3 s of audio
        video, audio = h264_stream(out, 64, 64), audio_stream(out)
        encode_into(out, video, grey_frames(30, 64, 64))
        add_silence(out, audio, 3)
    with av.open(path('square_pixels.mp4'), 'w') as out:
        encode_into(out, h264_stream(out, 160, 96), grey_frames(10, 160, 96))
    # 16:9 shown, said only by the container (MP4 pasp): remuxed with the stream's ratio
    with av.open(paths['square_pixels']) as src, av.open(path('pasp.mp4'), 'w') as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        stream.sample_aspect_ratio = fractions.Fraction(16, 15)
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    # opaque red left half, transparent right half storing green
    rgba = np.zeros((32, 64, 4), np.uint8)
    rgba[:, :32], rgba[:, 32:] = (255, 0, 0, 255), (0, 255, 0, 0)
    for codec, pix_fmt in (('png', 'rgba'), ('qtrle', 'argb')):
        with av.open(path(f'alpha_{codec}.mov'), 'w') as out:
            stream = out.add_stream(codec, rate=25)
            stream.width, stream.height, stream.pix_fmt = 64, 32, pix_fmt
            encode_into(out, stream, [rgba] * 3, 'rgba')
    with av.open(path('alpha_vp9.webm'), 'w') as out:       # alpha in WebM's side channel
        stream = out.add_stream('libvpx-vp9', rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, 'yuva420p'
        encode_into(out, stream, [rgba] * 3, 'rgba')
    with av.open(path('hlg.mp4'), 'w') as out:              # HLG transfer, BT.2020 primaries
        encode_into(out, h264_stream(out, 64, 64, color_trc=18, color_primaries=9, colorspace=9),
                    grey_frames(5, 64, 64))
    with av.open(path('interlaced.mp4'), 'w') as out:       # field-coded, top field first
        stream = h264_stream(out, 64, 64)
        stream.options = {'flags': '+ildct+ilme', 'x264-params': 'tff=1'}
        encode_into(out, stream, grey_frames(5, 64, 64))
    # a broadcast recording: progressive pictures, then interlaced ones (two encodings in one
    # transport stream, the second's times following the first's)
    parts = []
    for options in ({'g': '10'}, {'g': '10', 'flags': '+ildct+ilme', 'x264-params': 'tff=1'}):
        part = root / f'part{len(parts)}.ts'
        with av.open(str(part), 'w') as out:
            stream = h264_stream(out, 64, 64)
            stream.options = options
            for i, pixels in enumerate(grey_frames(30, 64, 64)):
                frame = av_frame(pixels, 'rgb24')
                frame.pts = 32 * len(parts) + i        # past the first's reordering delay
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        parts.append(str(part))
    with av.open(path('interlaced_later.ts'), 'w') as out:
        stream = None
        for part in parts:
            with av.open(part) as source:
                for packet in source.demux(video=0):
                    if packet.dts is None:
                        continue
                    if stream is None:
                        stream = out.add_stream_from_template(source.streams.video[0])
                    packet.stream = stream
                    out.mux(packet)
    return paths


def decode_all(path):
    reader = VideoReader(path)
    with reader:
        frames = [frame.rgb() for frame in reader.decoded_frames()]
    return reader, frames


def test_a_side_the_cap_shrinks_below_16_px_skips_the_video(videos, tmp_path):
    folder = tmp_path / 'src'
    folder.mkdir()
    for name in ('wide', 'square'):
        (folder / f'{name}.mp4').symlink_to(videos[name])
    summary = write_video_frames(str(folder), str(tmp_path / 'a.beton'), max_resolution=16,
                                 workers=2, progress=False)
    assert summary['num_samples'] == 12       # the square video, stored 16x16
    [skipped] = summary['skipped']
    assert skipped['path'].endswith('wide.mp4')
    assert '1024x16 px frames shrink to 16x0 px' in skipped['reason']
    summary = write_video_pairs(str(folder), str(tmp_path / 'b.beton'), gap=2, workers=1,
                                progress=False)
    [skipped] = summary['skipped']
    assert skipped['path'].endswith('wide.mp4')
    assert 'shrink to 512x8 px at --max-resolution 512' in skipped['reason']


def test_cover_art_is_not_video(videos):
    with pytest.raises(VideoError, match='only an attached picture'):
        VideoReader(videos['cover_only'])
    reader, frames = decode_all(videos['cover_first'])
    assert len(frames) == 10 and frames[0].shape == (96, 160, 3)
    assert reader.shortfall() is None


def test_audio_outlasting_the_video_is_no_shortfall(videos):
    reader, frames = decode_all(videos['long_audio'])
    assert reader.shortfall() is None and not reading_warnings(reader, reader.source)
    assert reader.promised == len(frames) == 30 and reader.declared is None
    assert file_table(videos['long_audio']) is not None    # may be read as segments


def test_pixel_aspect_said_by_the_container_only(videos):
    reader, frames = decode_all(videos['pasp'])
    assert (reader.width, reader.height) == (171, 96)      # 160 x 16/15, rounded
    assert frames[0].shape == (96, 171, 3)


@pytest.mark.parametrize('codec', ['png', 'qtrle'])
def test_transparent_pixels_are_composited_onto_white(videos, codec):
    _, frames = decode_all(videos[f'alpha_{codec}'])
    assert len(frames) == 3
    np.testing.assert_allclose(frames[0][:, :30].reshape(-1, 3).mean(0), (255, 0, 0), atol=2)
    np.testing.assert_array_equal(frames[0][:, 34:], 255)


def test_webm_transparency_the_decoder_drops_is_warned(videos):
    """FFmpeg's own VP9 decoder reads no alpha: the hidden green is stored, so say so."""
    reader, frames = decode_all(videos['alpha_vp9'])
    assert frames[0][:, 40:, 1].mean() > 200                # stored as it holds, not white
    assert ('VP8/VP9 transparency is not decoded (FFmpeg drops it): transparent pixels are '
            'stored with the colour they hold, not white') in reading_warnings(reader,
                                                                               reader.source)
    reader, _ = decode_all(videos['alpha_png'])
    assert not reader.alpha_dropped


def test_hdr_video_is_warned(videos):
    reader, _ = decode_all(videos['hlg'])
    assert ('HDR video (transfer arib-std-b67, BT.2020): stored without tone mapping, colours '
            'look washed out') in reading_warnings(reader, reader.source)
    reader, _ = decode_all(videos['square'])
    assert reader.hdr is None


def test_interlaced_video_is_warned(videos):
    """Fields woven into one picture comb where things move: say so, with the remedy."""
    reader, _ = decode_all(videos['interlaced'])
    assert ('interlaced video: each picture is stored with its two fields woven together '
            '(combs where things move); deinterlace it first (ffmpeg -i IN -vf bwdif OUT)'
            ) in reading_warnings(reader, reader.source)
    reader, _ = decode_all(videos['square'])
    assert not reader.interlaced


def test_interlaced_pictures_after_progressive_ones_are_warned(videos, tmp_path):
    """Only the first picture was looked at; and of a video read in segments, only the first
    segment's warnings were kept."""
    import av

    path = videos['interlaced_later']
    with av.open(path) as container:
        fields = [frame.interlaced_frame for frame in container.decode(video=0)]
    assert fields == [False] * 30 + [True] * 30
    summary = write_video_frames(path, str(tmp_path / 'o.beton'), workers=2, segment_frames=20,
                                 progress=False)
    assert [w['message'] for w in summary['warnings']] == [
        'interlaced video: each picture is stored with its two fields woven together (combs '
        'where things move); deinterlace it first (ffmpeg -i IN -vf bwdif OUT)']
    assert json.load(open(summary['sidecar']))['videos'][0]['segments'] > 1
