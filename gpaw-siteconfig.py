# GPAW build for pccd-flows[dft]: serial (no MPI), C++ compiler (GPAW >= 26 compiles its C sources as C++17,
# which plain gcc refuses), Debian's libxc, FFTW and OpenBLAS. Used as GPAW_CONFIG by `make`: GPAW_CONFIG=$PWD/gpaw-siteconfig.py pip install ".[dft]".
compiler = "g++"
mpi = False
fftw = True
libraries += ["fftw3", "openblas"]  # noqa: F821 - GPAW defines `libraries` before it runs this file
