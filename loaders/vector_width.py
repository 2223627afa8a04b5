"""``wide_vectors()``: let LLVM vectorise the calling compiled function with 512-bit vectors.

On Intel CPUs with AVX-512 LLVM still prefers 256-bit vectors (its ``prefer-256-bit``
tuning; for AMD's Zen 4 it picks 512 bits already), and Numba offers no way to change that
for one function, only for the whole process (``NUMBA_CPU_FEATURES``). The colour ops of
the photometric augment are bound by arithmetic over interleaved RGB, where 16 lanes instead
of 8 take about a fifth off a view. A call to
``wide_vectors()`` at the top of a compiled function sets LLVM's ``prefer-vector-width``
attribute on that function only. On CPUs without AVX-512 LLVM keeps to the widest vectors
they have, so it changes nothing there; on the Skylake-server Xeons (Skylake-SP, Cascade
Lake, Cooper Lake), whose cores lower their clock for 512-bit arithmetic, which is why LLVM
prefers 256 bits, it is not set.
"""
import llvmlite.binding as llvm
from numba.core import config, types
from numba.extending import intrinsic

# LLVM's names for the cores that slow down on 512-bit floating-point arithmetic
DOWNCLOCKING_CPUS = frozenset({'skylake-avx512', 'cascadelake', 'cooperlake'})


def prefers_wide_vectors(cpu_name):
    """Whether code compiled for LLVM's ``cpu_name`` should prefer 512-bit vectors."""
    return cpu_name not in DOWNCLOCKING_CPUS


def compile_cpu_name():
    """The CPU Numba compiles for: ``NUMBA_CPU_NAME`` if set (other than ``host``), else this
    machine's."""
    name = config.CPU_NAME
    return llvm.get_host_cpu_name() if name in (None, 'host') else name


@intrinsic
def wide_vectors(typingctx):
    """Mark the compiled function this is called from with ``prefer-vector-width=512``, unless
    the CPU it is compiled for slows down on 512-bit arithmetic."""
    def codegen(context, builder, signature, args):
        attributes = builder.function.attributes
        # llvmlite's FunctionAttributes admits only its list of keyword attributes; a string
        # attribute goes into the set underneath and is printed as written. Should a later
        # llvmlite store them otherwise, the code keeps LLVM's default width: a hint, not a
        # reason to fail.
        if prefers_wide_vectors(compile_cpu_name()) and isinstance(attributes, set):
            set.add(attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()
    return types.void(), codegen
