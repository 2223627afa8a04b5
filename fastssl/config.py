"""The settings of every command, declared up front: the constants and backbone group all of
them share, and the fastargs sections of training (``train.py``).

One source of truth: ``configs/*.yaml`` recipes, overridden by ``--section.key=value`` on the
command line. Anything a user might want to change is a parameter, with its default, its
valid range and a description (``python train.py --help`` prints them). The evaluation
commands' sections (``eval.py``) are in ``fastssl/eval_config.py``, built from the same
constants and :func:`backbone_params`; ``fastssl/config_loader.py`` reads and checks them.
"""
import functools

from fastargs import Param, Section
from fastargs.config import Config

from fastssl_common.errors import UserError, require_file

from .config_loader import Bool, Float, Int, OneOf, PathStr, Str, read_settings
from .invariance_data import KINDS
from .variants import VARIANTS

# torchvision ResNets a backbone can be -> (bottleneck blocks?, blocks per stage): what
# ``model_io`` reads the architecture off a state dict by.
ARCHITECTURES = {
    'resnet18': (False, (2, 2, 2, 2)),
    'resnet34': (False, (3, 4, 6, 3)),
    'resnet50': (True, (3, 4, 6, 3)),
    'resnet101': (True, (3, 4, 23, 3)),
    'resnet152': (True, (3, 8, 36, 3)),
}
PRECISIONS = ('auto', 'fp32', 'bf16', 'fp16')
RESOLUTION = 224        # image side, px, of training views and evaluation crops
# The smallest image side: a ResNet downsamples by 32, so below 32 px its last stage sees less
# than one pixel per image and its strides stop meaning anything.
RESOLUTION_MIN = 32
# Settings that reach float32 tensors and optimizers stay below float32's largest value
# (3.4e38): torch cannot convert a larger one (a RuntimeError, not a result). Values that
# large are of no use anyway: training and the probe diverge (reported as such), kNN votes
# are uniform.
FLOAT32_BOUND = 1e38
# Split-BatchNorm groups (docs/training.md#batchnorm): BatchNorm over fewer samples than this
# normalises by a spread too noisy to train on (Wu & He 2018 measure the error climbing
# steeply below 8 per group; groups of 2 blew up the first conv's weights within 7 steps).
# ``auto`` takes at most 8 groups, the GPUs official MoCo's shuffle-BN spreads a batch over.
MIN_GROUP = 8
AUTO_SPLITS_MAX = 8
SEED_MAX = 2 ** 32 - 1  # the widest seed every generator a seed feeds accepts (NumPy, FFCV)
KNN_K = 200             # weighted kNN (Wu et al. 2018, the MoCo monitor): neighbours
KNN_TEMPERATURE = 0.07  # and the temperature of their exp(s / T) votes


def backbone_params(*keys, precision='auto', precision_note=''):
    """The parameters every command that loads or runs a backbone shares, those named in
    ``keys`` (of checkpoint, arch, device, precision), as fresh Params: a Param belongs to
    the one section it is declared in. ``precision`` is its default; ``precision_note``
    says why, when it is not 'auto'."""
    group = {
        'checkpoint': lambda: Param(PathStr(), 'fastssl / official MoCo checkpoint or torchvision '
                                    'state dict', required=True),
        'arch': lambda: Param(OneOf('auto', *ARCHITECTURES),
                              'backbone architecture (auto = read off the keys)',
                              default='auto'),
        'device': lambda: Param(Str(), "'auto', 'cpu', 'cuda' or 'cuda:N'", default='auto'),
        'precision': lambda: Param(OneOf(*PRECISIONS), 'autocast: auto = bf16 on GPUs that '
                                   'support it, else fp32' + precision_note,
                                   default=precision),
    }
    return {key: group[key]() for key in keys}


def declare_sections(cfg):
    """Declare the training sections on the fastargs Config ``cfg``."""
    Section('data', 'Training data (a .beton from writers/)', config_descriptor=cfg).params(
        path=Param(PathStr(), 'training .beton', required=True),
        batch_size=Param(Int(gt=0), 'pairs per step, global: split evenly over torchrun ranks',
                         default=256),
        resolution=Param(Int(ge=RESOLUTION_MIN), 'output side of each view, px (at least '
                         f'{RESOLUTION_MIN}: the ResNet downsamples by {RESOLUTION_MIN})',
                         default=RESOLUTION),
        num_workers=Param(Int(ge=0), 'FFCV loader threads per process (0 = all cores, shared '
                          'among the torchrun ranks on a machine)', default=0),
        order=Param(OneOf('random', 'quasi_random', 'sequential'), 'sample order',
                    default='random'),
        os_cache=Param(Bool(), 'let the OS page cache hold the .beton', default=True),
        verify=Param(Bool(), 'check every page hash and decode every sample before training',
                     default=False),
    )
    Section('augment', 'MoCo v2 augmentation (torchvision semantics)',
            config_descriptor=cfg).params(
        placement=Param(OneOf('auto', 'gpu', 'cpu', 'none'),
                        'photometric augment: auto = gpu when CUDA is present, else cpu',
                        default='auto'),
        crop_scale_min=Param(Float(gt=0, le=1), 'RandomResizedCrop scale min', default=0.2),
        crop_scale_max=Param(Float(gt=0, le=1), 'RandomResizedCrop scale max', default=1.0),
        crop_ratio_min=Param(Float(gt=0), 'RandomResizedCrop aspect min', default=3 / 4),
        crop_ratio_max=Param(Float(gt=0), 'RandomResizedCrop aspect max', default=4 / 3),
        flip_prob=Param(Float(ge=0, le=1), 'horizontal flip probability', default=0.5),
        region_context_min=Param(Float(ge=0), 'region views: context margin added on each '
                                 'side, fraction of the tracked box (min)', default=0.0),
        region_context_max=Param(Float(ge=0), 'region views: context margin (max)',
                                 default=0.3),
        region_scale_min=Param(Float(gt=0, le=1), 'region views: RandomResizedCrop scale '
                               'within the region (min)', default=0.5),
        region_scale_max=Param(Float(gt=0, le=1), 'region views: crop scale within the '
                               'region (max)', default=1.0),
        brightness=Param(Float(ge=0), 'ColorJitter brightness', default=0.4),
        contrast=Param(Float(ge=0), 'ColorJitter contrast', default=0.4),
        saturation=Param(Float(ge=0), 'ColorJitter saturation', default=0.4),
        hue=Param(Float(ge=0, le=0.5), 'ColorJitter hue', default=0.1),
        p_jitter=Param(Float(ge=0, le=1), 'probability of ColorJitter', default=0.8),
        p_gray=Param(Float(ge=0, le=1), 'probability of RandomGrayscale', default=0.2),
        p_blur=Param(Float(ge=0, le=1), 'probability of GaussianBlur', default=0.5),
        sigma_min=Param(Float(gt=0), 'GaussianBlur sigma min', default=0.1),
        sigma_max=Param(Float(gt=0), 'GaussianBlur sigma max', default=2.0),
    )
    Section('model', 'Encoder', config_descriptor=cfg).params(
        arch=Param(OneOf(*ARCHITECTURES), 'torchvision backbone (random init)',
                   default='resnet50'),
        proj_hidden=Param(Int(ge=0), 'MLP head hidden width (0 = backbone feature dim)',
                          default=0),
        proj_dim=Param(Int(gt=0), 'MLP head output (key) dim', default=128),
    )
    Section('moco', 'MoCo v2', config_descriptor=cfg).params(
        queue_size=Param(Int(gt=0), 'K, keys in the queue: at least the keys of one step '
                         '(clamped for small datasets)', default=65536),
        momentum=Param(Float(ge=0, lt=1), 'key encoder EMA momentum m', default=0.999),
        temperature=Param(Float(gt=0, lt=FLOAT32_BOUND), 'InfoNCE temperature T', default=0.2),
        bn_splits=Param(Int(gt=0, special=('auto',)),
                        f'split-BN groups on one device (1 = plain BN; auto = the most, up to '
                        f'{AUTO_SPLITS_MAX}, that keep {MIN_GROUP} samples each); under torchrun '
                        f'shuffle-BN across ranks replaces it', default='auto'),
        frame_weight=Param(Float(ge=0, lt=FLOAT32_BOUND),
                           'weight of the image/frame-pair InfoNCE term', default=1.0),
        region_weight=Param(Float(ge=0, lt=FLOAT32_BOUND),
                            'weight of the region-pair InfoNCE term (rt, fti_rt)', default=1.0),
        separate_queues=Param(Bool(), 'fti_rt: frame and region terms get their own key '
                              'queues (default: one shared queue)', default=False),
    )
    Section('optim', 'SGD with cosine schedule', config_descriptor=cfg).params(
        lr=Param(Float(gt=0, lt=FLOAT32_BOUND), 'lr for a global batch of 256 (scaled linearly '
                 'with the global batch)', default=0.03),
        momentum=Param(Float(ge=0, lt=1), 'SGD momentum', default=0.9),
        weight_decay=Param(Float(ge=0, lt=FLOAT32_BOUND), 'weight decay', default=1e-4),
        warmup_epochs=Param(Float(ge=0), 'linear warmup epochs (at most train.epochs)',
                            default=0.0),
    )
    Section('train', 'Training run', config_descriptor=cfg).params(
        variant=Param(OneOf(*VARIANTS),
                      'positives: two crops of an image (mocov2), of a video frame '
                      '(mocov2_frames), frames i and i+k of a video (fti), one tracked region '
                      'at i and i+k (rt), or both (fti_rt)', default='mocov2'),
        epochs=Param(Int(gt=0), 'epochs', default=200),
        seed=Param(Int(ge=0, le=SEED_MAX), 'seed of data order, augment draws and init',
                   default=0),
        **backbone_params('device', 'precision'),
        channels_last=Param(Bool(), 'channels_last memory format', default=True),
        compile=Param(Bool(), 'torch.compile the encoders', default=False),
        run_dir=Param(PathStr(), 'run folder: TensorBoard events, checkpoints, config',
                      default='runs/mocov2'),
        resume=Param(Bool(), 'continue from the last checkpoint in run_dir', default=False),
        checkpoint_every=Param(Int(gt=0), 'checkpoint every N epochs (and at the end)',
                               default=10),
        keep_checkpoints=Param(Int(ge=0), 'numbered checkpoints kept, the newest (0 = all; '
                               'checkpoint_last.pt is always kept)', default=0),
    )
    Section('dist', 'Several processes started by torchrun (unused in a single process)',
            config_descriptor=cfg).params(
        timeout_s=Param(Int(gt=0), 'seconds a collective waits for the other ranks before the '
                        'run stops with an error naming the rank (a rank died or stalled)',
                        default=1800),
    )
    Section('logging', 'TensorBoard monitoring', config_descriptor=cfg).params(
        log_every=Param(Int(gt=0), 'steps between scalar logs (and non-finite checks)',
                        default=20),
        image_grid=Param(Int(ge=0), 'pairs shown in the start-of-training image grid (0 = off)',
                         default=8),
        progress=Param(Bool(), 'tqdm progress bar', default=True),
        knn_train_path=Param(PathStr(), 'labelled .beton: kNN memory bank ("" = off)', default=''),
        knn_val_path=Param(PathStr(), 'labelled .beton: kNN queries', default=''),
        knn_every=Param(Int(gt=0), 'kNN monitor every N epochs', default=10),
        knn_k=Param(Int(gt=0), 'kNN neighbours', default=KNN_K),
        knn_temperature=Param(Float(gt=0, lt=FLOAT32_BOUND), 'kNN weighting temperature',
                              default=KNN_TEMPERATURE),
        invariance_every=Param(Int(ge=0), 'invariance scores of the query backbone every N '
                               'epochs, and before the first (0 = off)', default=0),
        invariance_sets=Param(PathStr(), 'folder of invariance sets in any layout eval.py '
                              'invariance reads ("" = rendered data, rendered into '
                              'run_dir/invariance_sets)', default=''),
        invariance_kind=Param(OneOf('auto', *KINDS), 'layout of invariance_sets (auto = '
                              'rendered when it holds manifest.json, else folders)',
                              default='auto'),
    )


def load_settings(argv, dataset_must_exist=False):
    """The checked training settings (``settings.data.batch_size``, ...) of argv;
    ``dataset_must_exist``: ``data.path`` must be a file, checked before the loader memory
    (whose check imports torch and FFCV): a mistyped path is one line at once."""
    settings = read_settings(argv, declare_sections)
    check_together(settings)
    if dataset_must_exist:
        require_file(settings.data.path, 'dataset file')
    check_loader_memory(settings)
    return settings


REGION_AUGMENT = ('augment.region_context_min', 'augment.region_context_max',
                  'augment.region_scale_min', 'augment.region_scale_max')


def unread_keys(variant):
    """The keys a variant's training never reads: the weights of terms it lacks, the region
    views' augment without a region term, separate queues with one term."""
    read = term_weights(variant)
    keys = [f'moco.{name}' for name in ('frame_weight', 'region_weight') if name not in read]
    if not variant.uses_regions:
        keys += REGION_AUGMENT
    if len(variant.terms) < 2:
        keys.append('moco.separate_queues')
    return keys


def setting(s, key):
    section, name = key.split('.')
    return getattr(getattr(s, section), name)


@functools.cache
def declared_default(key):
    """The default ``declare_sections`` gives ``key`` (dotted)."""
    cfg = Config()
    declare_sections(cfg)
    return cfg.entries[tuple(key.split('.'))].default


def term_weights(variant):
    """The ``moco`` keys that weigh a variant's loss terms, sorted."""
    return sorted({weight_name(term) for term, _, _ in variant.terms})


def weight_name(term):
    """The ``moco`` key that weighs a loss term (``fastssl.variants``: region terms, the
    rest)."""
    return 'region_weight' if term == 'region' else 'frame_weight'


def check_together(s):
    """UserError for values that are each in range but do not fit together."""
    variant = VARIANTS[s.train.variant]
    terms = len(variant.terms)
    sharing = 1 if s.moco.separate_queues else terms
    step_keys = s.data.batch_size * sharing
    if s.moco.queue_size < step_keys:
        # a step's keys would overwrite each other within one enqueue
        shared = f' x {sharing} terms sharing the queue' if sharing > 1 else ''
        raise UserError(f'moco.queue_size must be >= {step_keys} (the keys of one step: '
                        f'data.batch_size={s.data.batch_size}{shared}), got {s.moco.queue_size}')
    weights = term_weights(variant)
    if all(getattr(s.moco, name) == 0 for name in weights):
        shown = ' and '.join(f'moco.{name}' for name in weights)
        raise UserError(f'train.variant={s.train.variant} weighs its loss by {shown}, all 0: '
                        f'it would train nothing')
    unread = [key for key in unread_keys(variant)
              if setting(s, key) != declared_default(key)]
    if unread:
        value = setting(s, unread[0])
        shown = str(value).lower() if isinstance(value, bool) else value
        raise UserError(f'{unread[0]}={shown} changes nothing: train.variant='
                        f'{s.train.variant} does not read it')
    if s.logging.knn_val_path and not s.logging.knn_train_path:
        raise UserError('logging.knn_val_path needs logging.knn_train_path, the kNN bank: '
                        'without it the kNN monitor is off')
    if not s.logging.invariance_every:
        for key in ('invariance_sets', 'invariance_kind'):
            if getattr(s.logging, key) != declared_default(f'logging.{key}'):
                raise UserError(f'logging.{key} is set but logging.invariance_every=0 turns '
                                f'the invariance monitor off: set logging.invariance_every')
    if s.logging.invariance_every and not s.logging.invariance_sets and \
            s.logging.invariance_kind not in ('auto', 'rendered'):
        raise UserError(f'logging.invariance_kind={s.logging.invariance_kind} needs '
                        f'logging.invariance_sets (the default sets are rendered data)')
    if s.optim.warmup_epochs > s.train.epochs:
        raise UserError(f'optim.warmup_epochs must be <= train.epochs={s.train.epochs}, got '
                        f'{s.optim.warmup_epochs}')


def check_loader_memory(s):
    """UserError when the loader's batches alone would not fit in memory."""
    # imported here: the loaders import torch and FFCV, and a command that only declares its
    # settings (eval.py's dispatch, --help) should start at once, Ctrl-C included
    from loaders.batch_memory import check_batch_memory
    check_batch_memory(s.data.batch_size, s.data.resolution, VARIANTS[s.train.variant].n_views,
                       ('data.batch_size', 'data.resolution'))
