"""The pairs writer's sidecar ``OUT.beton.json``: what it says about the file it describes."""
import os

from fastssl_common.formats import PROPOSAL_COLUMNS, REGION_FIELDS, VIDEO_PAIRS
from writers.pair_options import region_settings
from writers.shot_cuts import cut_detection_doc


def pairs_metadata(src, options, field_names, num_samples, videos, skipped, problems, counts,
                   tracks):
    """The sidecar: format id, the fields written (``field_names``) with what they hold, the
    proposals (how they were made, or that they are reserved or absent), the video table,
    skipped videos, warnings, counts, cut detection and the options (``src`` made absolute).
    ``tracks`` is the track summary (None without ``--proposals``)."""
    return {
        'format': VIDEO_PAIRS.sidecar, 'num_samples': num_samples,
        'fields': VIDEO_PAIRS.fields_doc(field_names),
        'proposals': _proposals_doc(options, tracks),
        'videos': videos, 'skipped': skipped, 'warnings': problems, 'counts': counts,
        'cut_detection': cut_detection_doc(options['cut_threshold']),
        'options': dict(options, src=os.path.abspath(src)),
    }


def _proposals_doc(options, tracks):
    max_proposals = options['max_proposals']
    doc = {
        'status': 'tracked' if tracks is not None else 'reserved' if max_proposals else 'absent',
        'fields': list(REGION_FIELDS) if max_proposals else [],
        'max_proposals': max_proposals,
        'columns': list(PROPOSAL_COLUMNS),
        'units': 'pixels of the stored frames (x0, y0, x1, y1; exclusive x1, y1)',
        'rows': 'rows [0, num_proposals) are valid, best confidence first; the others are zero',
    }
    if tracks is None:
        doc['filled_by'] = ("--proposals N, or in place (writers.proposal_slots."
                            "proposal_slots gives each sample's byte offsets)")
        return doc
    settings = region_settings(options)
    doc.update(
        method=_method(options, settings.proposals.ranking), ranking=settings.proposals.ranking,
        tracker='median flow over pyramidal Lucas-Kanade flow, forward-backward checked',
        proposal_settings=vars(settings.proposals), tracker_settings=vars(settings.tracker),
        track_resolution=options['track_resolution'], tracks=tracks)
    return doc


def _method(options, ranking):
    """How the proposals were found and ranked, in words."""
    if ranking == 'motion':
        found = (f"detector {options['detector_arch']}" if options['detector'] else
                 'selective search (OpenCV ximgproc, single strategy) plus motion blobs of '
                 'the dense flow (DIS) to the next frame')
        return (f'{found}, ranked by motion contrast against the surrounding ring times '
                'colour contrast (or detector score)')
    if options['detector']:
        return f"detector {options['detector_arch']}"
    return ('selective search (OpenCV ximgproc, fast mode), ranked by centre-surround colour '
            'contrast')
