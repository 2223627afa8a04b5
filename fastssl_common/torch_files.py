"""Files torch.save writes, checked without torch: a zip archive's members against the CRC-32
their writer recorded (torch.load checks none). Checkpoints and the writers' detector
checkpoints both use it."""
import errno
import zipfile
import zlib

from .errors import UserError

# How a file torch.save wrote (its current format) begins
ZIP_MAGIC = b'PK\x03\x04'

# What zipfile raises for a damaged archive: bad headers or CRC (BadZipFile), data cut short
# (EOFError), a damaged method or flag field (NotImplementedError; RuntimeError: "encrypted"),
# a damaged name (UnicodeDecodeError) or offset (ValueError: too large to seek to; OSError
# EINVAL: before the file's start).
_DAMAGED = (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, ValueError,
            zlib.error)


def check_archive(path, kind=None):
    """UserError unless every member of the zip archive ``path`` reads back with the CRC-32
    its writer recorded. torch.load checks none: bytes zeroed on disk or in a copy would load
    as wrong weights. One streaming read of the file (a 300 MB checkpoint: a fraction of a
    second once cached, and it warms the cache torch.load then reads from). ``kind`` names
    the file in the messages (``detector P is damaged``); None: a checkpoint."""
    named = f'{kind} {path}' if kind else path
    member = None
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                with archive.open(member) as data:
                    while data.read(1 << 20):
                        pass
    except (OSError, *_DAMAGED) as err:
        if isinstance(err, OSError) and err.errno != errno.EINVAL:
            raise UserError(f'cannot read {kind or "checkpoint"} {path}: '
                            f'{err.strerror or err}') from None
        if member is None:
            raise UserError(f'{named} is truncated or damaged (its zip directory cannot be '
                            f'read: {err})') from None
        # a damaged name may hold any byte: keep the line one line
        name = ''.join(c if c.isprintable() else '?' for c in member.filename)
        why = ('fails its checksum' if str(err).startswith('Bad CRC-32')
               else f'cannot be read: {err}')
        raise UserError(f'{named} is damaged (member {name} {why})') from None
