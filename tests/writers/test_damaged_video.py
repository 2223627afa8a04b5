"""Videos that decode to fewer frames than their header declares, or hold a damaged packet:
warned in the summary and recorded in the sidecar; ``--strict`` makes them fatal."""
import json
import os

import numpy as np
import pytest

from fastssl_common.errors import UserError
from writers.video_source import DAMAGED, VideoReader
from writers.write_video_frames import write_video_frames
from writers.write_video_pairs import write_video_pairs

DECLARED = 217


def faststart(src, dst):
    """Remux the mp4 ``src`` with its frame table (moov) first, as streaming files are: cut
    short, it still declares every frame."""
    import av

    with av.open(src) as source, av.open(dst, 'w', options={'movflags': 'faststart'}) as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return dst


def packets_of(path):
    """``(file position, size, key frame, hidden)`` of each packet of a video file's stream,
    in file order."""
    import av

    with av.open(str(path)) as container:
        return [(p.pos, p.size, p.is_keyframe, p.is_discard)
                for p in container.demux(container.streams.video[0]) if p.size]


def damaged_copy(path, dst, packet, how):
    """``path`` written to ``dst`` with ``packet`` (a :func:`packets_of` row) garbled (8 bytes
    in its middle flipped: FFmpeg decodes it with the errors concealed and marks it corrupt)
    or destroyed (overwritten: it does not decode)."""
    position, size = packet[:2]
    data = bytearray(open(path, 'rb').read())
    if how == 'garbled':
        for offset in range(position + size // 2, position + size // 2 + 8):
            data[offset] ^= 0xff
    else:
        data[position:position + size] = b'\xff' * size
    open(dst, 'wb').write(bytes(data))
    return dst


def kept_frames(path, threads=0):
    """``({time: RGB} of the frames the reader keeps, the reader)``."""
    with VideoReader(str(path), threads=threads) as reader:
        return {round(f.timestamp, 3): f.rgb for f in reader.frames()}, reader


def assert_whole(kept, clean):
    """Every frame kept is the undamaged file's picture at its time."""
    for time, rgb in kept.items():
        assert np.array_equal(rgb, clean[time]), time


@pytest.fixture(scope='module')
def clips(module_tmp, encode_clip, chelsea_pan):
    """``whole.mp4`` (217 frames), ``short.mp4`` (cut where packet 90 starts: the header
    still declares 217 frames) and ``damaged.mp4`` (packet 100 overwritten with garbage)."""
    import av

    root = module_tmp.mktemp('damaged')
    encoded = encode_clip(root / 'encoded.mp4', chelsea_pan(DECLARED), options={'crf': '23'})
    whole = faststart(encoded, str(root / 'whole.mp4'))
    data = open(whole, 'rb').read()
    with av.open(whole) as container:
        packets = [(p.pos, p.size) for p in container.demux(container.streams.video[0])
                   if p.size]
    (root / 'short.mp4').write_bytes(data[:packets[90][0]])
    position, size = packets[100]
    damaged = bytearray(data)
    damaged[position:position + size] = b'\xff' * size
    (root / 'damaged.mp4').write_bytes(bytes(damaged))
    return {name: str(root / f'{name}.mp4') for name in ('whole', 'short', 'damaged')}


def test_the_reader_counts_what_the_header_declares_and_what_decodes(clips):
    with VideoReader(clips['whole']) as reader:
        assert reader.promised == DECLARED
        assert sum(1 for _ in reader.decoded_frames()) == DECLARED
        assert reader.shortfall() is None and reader.decode_errors == 0
    with VideoReader(clips['short']) as reader:
        decoded = sum(1 for _ in reader.decoded_frames())
        assert reader.promised == DECLARED and 0 < decoded < DECLARED * 0.6
        assert reader.error is None                          # FFmpeg itself says nothing
        assert reader.shortfall() == (DECLARED, decoded)
    with VideoReader(clips['short']) as reader:              # stopped early on purpose
        list(reader.frames(max_frames=10))
        assert reader.shortfall() is None


def test_a_damaged_packet_is_skipped_and_counted(clips):
    with VideoReader(clips['damaged']) as reader:
        frames = [frame.index for frame in reader.decoded_frames()]
    assert reader.decode_errors == 1 and reader.error is None
    assert len(frames) == DECLARED - 1                        # decoding went on past it
    assert reader.first_decode_error.startswith('after frame ')


@pytest.mark.parametrize('writer', ['frames', 'pairs'])
def test_writers_warn_and_record_a_short_video(clips, tmp_path, writer):
    write = (write_video_frames if writer == 'frames' else
             lambda *a, **k: write_video_pairs(*a, gap=4, **k))
    summary = write(clips['short'], str(tmp_path / 'o.beton'), workers=1, progress=False)
    video = json.load(open(summary['sidecar']))['videos'][0]
    assert video['frames_promised'] == DECLARED and video['frames_read'] < DECLARED * 0.6
    message = (f"decoded {video['frames_read']} of the {DECLARED} frames its header "
               f"declares")
    assert [w['message'] for w in summary['warnings']] == [message + ' (cut short or damaged?)']
    whole = write(clips['whole'], str(tmp_path / 'w.beton'), workers=1, progress=False)
    assert whole['warnings'] == []
    assert json.load(open(whole['sidecar']))['videos'][0]['frames_promised'] == DECLARED
    with pytest.raises(UserError, match=f'{message}.*--strict'):
        write(clips['short'], str(tmp_path / 's.beton'), workers=1, progress=False,
              strict=True)
    assert not os.path.exists(tmp_path / 's.beton')


def test_the_frames_writer_reports_a_damaged_packet(clips, tmp_path, run_script,
                                                    assert_one_line_error):
    out = tmp_path / 'd.beton'
    result = run_script('writers/write_video_frames.py', clips['damaged'], out,
                        '--workers', '1')
    assert result.returncode == 0, result.stderr
    assert 'skipped 1 damaged packet(s) that did not decode (first after frame ' \
        in result.stderr
    video = json.load(open(f'{out}.json'))['videos'][0]
    assert video['decode_errors'] == 1 and video['frames_read'] == DECLARED - 1
    result = run_script('writers/write_video_frames.py', clips['short'], tmp_path / 's.beton',
                        '--workers', '1', '--strict')
    assert_one_line_error(result, 'short.mp4', f'of the {DECLARED} frames', '--strict')
    assert not os.path.exists(tmp_path / 's.beton')


def test_frames_built_on_a_lost_packet_are_skipped_until_the_next_key_frame(
        tmp_path, encode_clip, chelsea_pan, psnr):
    """Key frames every 20 frames; packet 25 is destroyed. FFmpeg decodes frames 26..39 from
    references it never had (here: the pan drifts; in a real file, another shot's pixels):
    they are skipped and reported as one warning, and frame 40 on is stored again."""
    originals = chelsea_pan(60)
    whole = encode_clip(tmp_path / 'gop.mp4', originals,
                        options={'crf': '18', 'g': '20', 'bf': '0'})
    damaged = damaged_copy(whole, tmp_path / 'damaged.mp4', packets_of(whole)[25], 'destroyed')
    with VideoReader(str(damaged)) as reader:
        kept = list(reader.frames())
    assert reader.decode_errors == 1
    # indices count decoded frames: from the lost packet on, one short of the position
    assert [index for index, _ in reader.bad_frames] == list(range(25, 39))
    assert [f.index for f in kept] == list(range(25)) + list(range(39, 59))
    for frame in kept:
        position = frame.index + (frame.index >= 25)
        assert psnr(frame.rgb, originals[position]) > 30, frame.index

    summary = write_video_frames(str(damaged), str(tmp_path / 'o.beton'), workers=1,
                                 progress=False)
    assert summary['num_samples'] == 45
    assert [w['message'] for w in summary['warnings']][-1] == (
        'skipped 14 unreadable frames (25 to 38): damaged, or predicted from a damaged picture '
        'before the next key frame (its picture is wrong)')


@pytest.mark.parametrize('damage', ['garbled', 'destroyed'])
def test_with_b_frames_no_frame_built_on_damage_is_kept(tmp_path, encode_clip, chelsea_pan,
                                                        damage):
    """A P picture's packet garbled (8 bytes: FFmpeg decodes it with the errors concealed
    and marks it corrupt, raising nothing) or destroyed (it does not decode), in a clip with
    B-frames and a key frame every 30. The frames built on it (those after it up to the key
    frame, and the B pictures shown just before it) were written, wrong, with no word
    (garbled), or kept where they came out before the loss was seen (destroyed). Every frame
    kept is the undamaged file's picture, the frames after the key frame are kept, and the
    damage is one run ending at the key frame."""
    import av

    whole = encode_clip(tmp_path / 'b.mp4', chelsea_pan(60),
                        options={'crf': '18', 'g': '30', 'bf': '2'})
    p_picture = max(packets_of(whole)[1:10], key=lambda packet: packet[1])
    damaged = damaged_copy(whole, tmp_path / 'damaged.mp4', p_picture, damage)
    clean, _ = kept_frames(whole)
    kept, reader = kept_frames(damaged)
    assert reader.decode_errors == (damage == 'destroyed') and len(clean) == 60
    times = sorted(clean)
    skipped = [i for i, t in enumerate(times) if t not in kept]
    lost = 1 if damage == 'destroyed' else 0        # the destroyed picture itself
    assert len(reader.bad_frames) == len(skipped) - lost
    assert skipped == list(range(skipped[0], 30)) and 0 < skipped[0] < 10
    assert_whole(kept, clean)
    if damage == 'garbled':     # the run starts at the first picture that differs
        with av.open(str(damaged)) as container:
            shown = [frame.to_ndarray(format='rgb24') for frame in container.decode(video=0)]
        with av.open(whole) as container:
            first_wrong = next(i for i, frame in enumerate(container.decode(video=0))
                               if not np.array_equal(frame.to_ndarray(format='rgb24'), shown[i]))
        assert first_wrong == skipped[0]       # a B picture, shown before the garbled one


def trim(src, dst, first_shown):
    """Remux ``src`` (25 fps) as ``ffmpeg -ss T -c copy`` cuts it: from the key frame before
    frame ``first_shown``, with the times moved so that ``first_shown`` shows at 0; the
    pictures before it get negative times, which the MP4 muxer hides with an edit list."""
    import av

    with av.open(src) as source, av.open(dst, 'w') as out:
        video = source.streams.video[0]
        stream = out.add_stream_from_template(video)
        per_frame = round(1 / (25 * video.time_base))
        packets = [p for p in source.demux(video) if p.size]
        key = max(p.pts for p in packets if p.is_keyframe and p.pts <= first_shown * per_frame)
        for packet in packets:
            if packet.pts >= key:
                packet.pts -= first_shown * per_frame
                packet.dts -= first_shown * per_frame
                packet.stream = stream
                out.mux(packet)
    return dst


def test_a_trimmed_mp4_is_whole(tmp_path, encode_clip, chelsea_pan):
    """An edit list hides the pictures before the cut (decoded to predict from, never shown)
    but the header counts them: no shortfall, and the frames kept are those from the cut."""
    frames = chelsea_pan(60)
    source = encode_clip(tmp_path / 'source.mp4', frames, options={'g': '20', 'bf': '2'})
    trimmed = trim(source, str(tmp_path / 'trimmed.mp4'), 29)     # key frame 20: 9 hidden
    with VideoReader(source) as reader:
        expected = [frame.rgb() for frame in reader.decoded_frames()][29:]
    with VideoReader(trimmed) as reader:
        got = [frame.rgb() for frame in reader.decoded_frames()]
        assert reader.shortfall() is None
        assert reader.declared == 40 and reader.hidden == 9
    assert len(got) == 31 and all(np.array_equal(a, b) for a, b in zip(got, expected))
    one_task = write_video_frames(trimmed, str(tmp_path / 'one.beton'), workers=1,
                                  strict=True, progress=False)
    assert one_task['num_samples'] == 31 and one_task['warnings'] == []
    segments = write_video_frames(trimmed, str(tmp_path / 'segments.beton'), workers=2,
                                  segment_frames=10, strict=True, progress=False)
    # read in segments (key frame 40 is shown frame 11), not again in one task
    assert json.load(open(segments['sidecar']))['videos'][0]['segments'] == 2
    assert open(tmp_path / 'one.beton', 'rb').read() == \
        open(tmp_path / 'segments.beton', 'rb').read()


def shorten_edit_list(path, fraction):
    """Cut the end of an MP4's (one-entry, version 0) edit list to ``fraction`` of its
    length, as an editor trims a clip's end without re-encoding."""
    data = bytearray(open(path, 'rb').read())
    entry = data.find(b'elst') + 12          # after the version, flags and entry count
    duration = int.from_bytes(data[entry:entry + 4], 'big')
    data[entry:entry + 4] = int(duration * fraction).to_bytes(4, 'big')
    open(path, 'wb').write(bytes(data))


def test_an_mp4_trimmed_at_both_ends_is_whole(tmp_path, encode_clip, chelsea_pan):
    """The pictures after an edit list's end are left out of FFmpeg's index, unflagged,
    but counted in the header: it was called cut short, and --strict refused it."""
    import av

    source = encode_clip(tmp_path / 'source.mp4', chelsea_pan(120), options={'g': '20', 'bf': '2'})
    trimmed = trim(source, str(tmp_path / 'trimmed.mp4'), 9)        # key frame 0: 9 hidden
    shorten_edit_list(trimmed, 0.3)
    with av.open(trimmed) as container:
        video = container.streams.video[0]
        listed = sum(1 for packet in container.demux(video) if packet.size)
        assert video.frames == 120 and listed < 100      # the pictures after it not listed
    with av.open(trimmed) as container:
        shown = sum(1 for _ in container.decode(video=0))
    assert shown < 40
    summary = write_video_frames(trimmed, str(tmp_path / 'o.beton'), workers=1, strict=True,
                                 progress=False)
    assert summary['num_samples'] == shown and summary['warnings'] == []


def test_damage_in_the_pictures_a_trim_hides_is_seen(tmp_path, encode_clip, chelsea_pan):
    """FFmpeg decodes the pictures a trimmed MP4 keeps before its cut, then drops them: one
    it concealed went unseen, and the shown frames predicted from it were written wrong."""
    import av

    source = encode_clip(tmp_path / 'source.mp4', chelsea_pan(60),
                         options={'crf': '18', 'g': '20', 'bf': '2'})
    trimmed = trim(source, str(tmp_path / 'trimmed.mp4'), 29)       # frames 20-28 hidden
    hidden = [packet for packet in packets_of(trimmed) if packet[3] and not packet[2]]
    p_picture = max(hidden, key=lambda packet: packet[1])
    damaged = damaged_copy(trimmed, tmp_path / 'damaged.mp4', p_picture, 'garbled')

    def raw(path):
        with av.open(str(path)) as container:
            return [frame.to_ndarray(format='rgb24') for frame in container.decode(video=0)]

    wrong = [i for i, (a, b) in enumerate(zip(raw(trimmed), raw(damaged)))
             if not np.array_equal(a, b)]
    assert wrong and wrong[-1] < 11             # shown frames up to key frame 40 are wrong
    clean, _ = kept_frames(trimmed)
    kept, reader = kept_frames(damaged)
    times = sorted(clean)
    assert len(clean) == 31 and reader.hidden == 9
    assert [i for i, t in enumerate(times) if t not in kept] == list(range(11))
    assert_whole(kept, clean)


def test_a_packet_lost_right_after_a_key_frame_damages_the_rest_of_its_group(
        tmp_path, encode_clip, chelsea_pan):
    """The key frame before the lost packet was still to be shown when the loss was reported:
    when it came out, decoding counted as started afresh, and the rest of the group, built on
    the lost picture, was written wrong without a word."""
    whole = encode_clip(tmp_path / 'b.mp4', chelsea_pan(60),
                        options={'crf': '18', 'g': '30', 'bf': '2'})
    damaged = damaged_copy(whole, tmp_path / 'damaged.mp4', packets_of(whole)[1], 'destroyed')
    clean, _ = kept_frames(whole)
    kept, reader = kept_frames(damaged)
    assert reader.decode_errors == 1
    assert_whole(kept, clean)
    times = sorted(clean)
    assert all(time in kept for time in times[30:])        # the next group is whole


def test_a_packet_lost_just_before_a_key_frame_spares_the_next_group(
        tmp_path, encode_clip, chelsea_pan):
    """With frame threads FFmpeg reports a loss a few packets late, after the next key
    frame went in: that key frame did not count as a fresh start, and its whole group,
    decoded whole, was skipped."""
    whole = encode_clip(tmp_path / 'w.mp4', chelsea_pan(60, width=160, height=96),
                        options={'crf': '18', 'g': '30', 'bf': '3', 'b-pyramid': 'normal'})
    packets = packets_of(whole)
    key = [n for n, packet in enumerate(packets) if packet[2]][1]
    damaged = damaged_copy(whole, tmp_path / 'damaged.mp4', packets[key - 1], 'destroyed')
    clean, _ = kept_frames(whole, threads=4)
    kept, reader = kept_frames(damaged, threads=4)
    assert reader.decode_errors == 1
    assert_whole(kept, clean)
    assert len(clean) - len(kept) <= 4       # the lost picture and those built on it


TS_PACKET = 188


def transport_loss(path, dst, packet, how):
    """The transport stream ``path`` written to ``dst`` without some of ``packet``'s 188-byte
    transport packets (``packet``: a :func:`packets_of` row): all of them (``'whole'``, a
    picture lost in transmission) or the second half (``'tail'``). The demuxer sees the
    continuity counter jump, and its parser hands the mark to the picture before the one cut
    short, or two before one lost whole; the decoder never hears of a whole lost picture."""
    data = open(path, 'rb').read()
    start = packet[0]
    pid = lambda offset: ((data[offset + 1] & 0x1f) << 8) | data[offset + 2]  # noqa: E731
    end = min([p[0] for p in packets_of(path) if p[0] > start], default=len(data))
    own = [offset for offset in range(start, end, TS_PACKET) if pid(offset) == pid(start)]
    dropped = set(own if how == 'whole' else own[len(own) // 2:])
    open(dst, 'wb').write(b''.join(data[offset:offset + TS_PACKET]
                                   for offset in range(0, len(data), TS_PACKET)
                                   if offset not in dropped))
    return dst


@pytest.mark.parametrize('codec', ['libx264', 'libx265'])
@pytest.mark.parametrize('how', ['whole', 'tail'])
def test_a_picture_a_transport_stream_lost_skips_what_is_built_on_it(
        tmp_path, encode_clip, chelsea_pan, codec, how):
    """MPEG-TS with B-frames, a key frame every 30: a P picture's transport packets dropped,
    all or half. FFmpeg decodes on without an error (and marks nothing concealed in HEVC,
    or where the whole picture is gone), and the frames built on the damage were written
    wrong without a word. Now every frame kept is the intact file's picture, and those
    skipped end at the next key frame."""
    options = {'crf': '18', 'g': '30', 'bf': '2'}
    if codec == 'libx265':
        options = {'crf': '18', 'x265-params': 'keyint=30:min-keyint=30:bframes=2:log-level=none'}
    whole = encode_clip(tmp_path / 'whole.ts', chelsea_pan(60), codec=codec, options=options)
    p_picture = max(packets_of(whole)[12:20], key=lambda packet: packet[1])
    damaged = transport_loss(whole, tmp_path / 'damaged.ts', p_picture, how)
    clean, intact = kept_frames(whole)
    assert len(clean) == 60 and not intact.bad_frames
    kept, reader = kept_frames(damaged)
    assert reader.decode_errors == 0 and len(clean) - len(kept) > 1
    assert_whole(kept, clean)
    times = sorted(clean)
    skipped = [i for i, t in enumerate(times) if t not in kept]
    assert 5 < skipped[0] < 20 and skipped[-1] == 29     # none after the key frame

    summary = write_video_frames(str(damaged), str(tmp_path / 'o.beton'), workers=1,
                                 progress=False)
    assert summary['num_samples'] == len(kept)
    bad = [index for index, _ in reader.bad_frames]
    which = (f'unreadable frame {bad[0]}' if len(bad) == 1 else
             f'{len(bad)} unreadable frames ({bad[0]} to {bad[-1]})')
    assert [w['message'] for w in summary['warnings']] == [f'skipped {which}: {DAMAGED}']


def test_losses_after_a_key_frame_and_before_it_are_both_seen(tmp_path, encode_clip,
                                                              chelsea_pan):
    """Two losses in an H.264 transport stream: half a P picture in the first group, and the
    whole picture after the second key frame, whose mark lands on the picture before that key
    frame. The second mark was dropped while the first loss stood, and the key frame then
    ended both: the second group was written wrong without a word. The second loss alone,
    read in segments from the key frames: the segment from the key frame seeks past the mark
    and wrote its group wrong; the file is read in one task."""
    whole = encode_clip(tmp_path / 'whole.ts', chelsea_pan(60),
                        options={'crf': '18', 'g': '30', 'bf': '2'})
    packets = packets_of(whole)
    key = [n for n, packet in enumerate(packets) if packet[2]][1]
    after_key = transport_loss(whole, tmp_path / 'after_key.ts', packets[key + 1], 'whole')
    twice = transport_loss(after_key, tmp_path / 'twice.ts', packets[12], 'tail')
    clean, _ = kept_frames(whole)
    times = sorted(clean)
    kept, reader = kept_frames(twice)
    assert_whole(kept, clean)
    skipped = [i for i, t in enumerate(times) if t not in kept]
    assert 5 < skipped[0] < 20 and skipped[-1] == 59

    kept, _ = kept_frames(after_key)
    assert_whole(kept, clean)
    summary = write_video_frames(str(after_key), str(tmp_path / 'o.beton'), workers=2,
                                 segment_frames=20, progress=False)
    assert summary['num_samples'] == len(kept) < 31
    assert json.load(open(summary['sidecar']))['videos'][0]['segments'] == 1
