"""Loading the native extension, with an ImportError that says which CUDA library is missing."""

from types import ModuleType

CUDA_RUNTIME_LIBS: tuple[str, ...]
DRIVER_LIB: str

def explain(error: BaseException) -> str | None: ...
def load_native() -> ModuleType: ...
