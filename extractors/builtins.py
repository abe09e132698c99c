"""The built-in extractor list, in one place so dispatch and docs agree.

Each module imports its heavy library (pandas, h5py, netCDF4, Pillow, ...) inside
the extractor function, so importing this list stays cheap and a worker only pays
for the libraries of the files it actually sees.
"""

from __future__ import annotations

from extractors.archives import ARCHIVES
from extractors.audio import AUDIO
from extractors.base import Extractor
from extractors.c_code import C_CODE
from extractors.columnar import COLUMNAR
from extractors.config import CONFIG
from extractors.databases import DATABASES
from extractors.dicom import DICOM
from extractors.fits import FITS
from extractors.fonts import FONTS
from extractors.fortran import FORTRAN
from extractors.gis import GIS
from extractors.graphics import GRAPHICS
from extractors.grib import GRIB
from extractors.hdf5 import HDF5
from extractors.idl import IDL
from extractors.images import IMAGES
from extractors.jsonxml import JSONXML
from extractors.keyword import KEYWORD
from extractors.matlab import MATLAB
from extractors.nasa_cdf import NASA_CDF
from extractors.netcdf import NETCDF
from extractors.neuro import NEURO
from extractors.numpy_files import NUMPY
from extractors.office import OFFICE
from extractors.physical import PHYSICAL
from extractors.pickles import PICKLE
from extractors.python_code import PYTHON
from extractors.seismic import SEISMIC
from extractors.spice import SPICE
from extractors.tabular import TABULAR
from extractors.zarr_store import ZARR

BUILTINS: tuple[Extractor, ...] = (
    TABULAR, JSONXML, KEYWORD, IMAGES, HDF5, NETCDF, PYTHON, C_CODE, ARCHIVES, NUMPY, FITS, PHYSICAL,
    DICOM, MATLAB, FONTS, IDL, CONFIG, PICKLE, AUDIO, NEURO, SEISMIC, COLUMNAR, GRIB, ZARR,
    OFFICE, DATABASES, GIS, NASA_CDF, FORTRAN, GRAPHICS, SPICE,
)
