"""The PCCD point-cloud codec: crystal <-> 3 x 128 x 3 tensor."""

from pccd_flows.codec.decode import decode_lattice, decode_tensor
from pccd_flows.codec.encode import DEFAULT_CODEC, EncodedCrystal, encode_structure, slot_elements
from pccd_flows.codec.errors import CodecError
from pccd_flows.codec.settings import CodecSettings

__all__ = [
    "DEFAULT_CODEC",
    "CodecError",
    "CodecSettings",
    "EncodedCrystal",
    "decode_lattice",
    "decode_tensor",
    "encode_structure",
    "slot_elements",
]
