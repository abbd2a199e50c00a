//! The DLPack C ABI and the mapping between its dtype/device codes and ours. The C structs are
//! `dlpark`'s (`dlpark::ffi`: generated from `dlpack.h` 1.3, with size/offset assertions and
//! tested under Miri); what is here is only which codes tensorbridge produces and reads.

use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;
use std::ffi::CStr;
use tensorbridge::{DType, Device};

pub use dlpark::ffi::{
    DLDataType, DLDataTypeCode, DLDevice, DLDeviceType, DLManagedTensor, DLManagedTensorVersioned,
    DLPackVersion, DLTensor,
};
pub use dlpark::DlpackFlags;

/// The DLPack version we produce (and the major version we read).
pub const DLPACK_VERSION: DLPackVersion = DLPackVersion { major: 1, minor: 1 };
/// `DLPACK_FLAG_BITMASK_READ_ONLY`.
pub const FLAG_READ_ONLY: DlpackFlags = DlpackFlags::READ_ONLY;
/// `DLPACK_FLAG_BITMASK_IS_COPIED`.
pub const FLAG_IS_COPIED: DlpackFlags = DlpackFlags::IS_COPIED;

/// `DLDeviceType` values we name.
pub const KDL_CPU: DLDeviceType = DLDeviceType::CPU;
pub const KDL_CUDA: DLDeviceType = DLDeviceType::CUDA;
pub const KDL_CUDA_HOST: DLDeviceType = DLDeviceType::CUDAHOST;
pub const KDL_ROCM: DLDeviceType = DLDeviceType::ROCM;
pub const KDL_CUDA_MANAGED: DLDeviceType = DLDeviceType::CUDAMANAGED;

/// `DLDataTypeCode` values we use.
pub const KDL_INT: DLDataTypeCode = DLDataTypeCode::INT;
pub const KDL_UINT: DLDataTypeCode = DLDataTypeCode::UINT;
pub const KDL_FLOAT: DLDataTypeCode = DLDataTypeCode::FLOAT;
pub const KDL_BFLOAT: DLDataTypeCode = DLDataTypeCode::BFLOAT;
pub const KDL_BOOL: DLDataTypeCode = DLDataTypeCode::BOOL;

pub const NAME_LEGACY: &CStr = c"dltensor";
pub const NAME_VERSIONED: &CStr = c"dltensor_versioned";
pub const NAME_LEGACY_USED: &CStr = c"used_dltensor";
pub const NAME_VERSIONED_USED: &CStr = c"used_dltensor_versioned";

// ---- dtypes and devices ------------------------------------------------------------------------

/// The DLPack type of a dtype (every tensorbridge dtype has one).
pub fn dl_dtype(d: DType) -> DLDataType {
    let code = match d {
        DType::Bool => KDL_BOOL,
        DType::U8 | DType::U16 | DType::U32 | DType::U64 => KDL_UINT,
        DType::I8 | DType::I16 | DType::I32 | DType::I64 => KDL_INT,
        DType::F16 | DType::F32 | DType::F64 => KDL_FLOAT,
        DType::BF16 => KDL_BFLOAT,
    };
    DLDataType {
        code,
        bits: (d.size_in_bytes() * 8) as u8,
        lanes: 1,
    }
}

/// The dtype of a DLPack type, or BufferError naming it.
pub fn dtype_of_dl(t: DLDataType) -> PyResult<DType> {
    let d = match (t.code, t.bits, t.lanes) {
        (KDL_BOOL, 8, 1) => DType::Bool,
        (KDL_UINT, 8, 1) => DType::U8,
        (KDL_UINT, 16, 1) => DType::U16,
        (KDL_UINT, 32, 1) => DType::U32,
        (KDL_UINT, 64, 1) => DType::U64,
        (KDL_INT, 8, 1) => DType::I8,
        (KDL_INT, 16, 1) => DType::I16,
        (KDL_INT, 32, 1) => DType::I32,
        (KDL_INT, 64, 1) => DType::I64,
        (KDL_FLOAT, 16, 1) => DType::F16,
        (KDL_FLOAT, 32, 1) => DType::F32,
        (KDL_FLOAT, 64, 1) => DType::F64,
        (KDL_BFLOAT, 16, 1) => DType::BF16,
        (code, bits, lanes) => {
            return Err(PyBufferError::new_err(format!(
                "DLPack dtype (code {}, bits {bits}, lanes {lanes}) is not supported; \
                 tensorbridge supports bool, uint8-64, int8-64, float16, bfloat16, float32, \
                 float64 with one lane",
                code.0
            )))
        }
    };
    Ok(d)
}

/// The DLPack device of a tensorbridge device.
pub fn dl_device(d: &Device) -> DLDevice {
    match d {
        Device::Cpu => DLDevice {
            device_type: KDL_CPU,
            device_id: 0,
        },
        Device::Cuda(i) => DLDevice {
            device_type: KDL_CUDA,
            device_id: *i as i32,
        },
    }
}

/// A DLPack device as a human reads it.
pub fn describe_device(d: DLDevice) -> String {
    let name = match d.device_type {
        KDL_CPU => "kDLCPU",
        KDL_CUDA => "kDLCUDA",
        KDL_CUDA_HOST => "kDLCUDAHost",
        KDL_ROCM => "kDLROCM",
        KDL_CUDA_MANAGED => "kDLCUDAManaged",
        _ => "device type",
    };
    format!("({name}={}, {})", d.device_type.0, d.device_id)
}

/// Memory the CPU reads in place: plain host memory and CUDA pinned host memory.
pub fn is_host_readable(d: DLDevice) -> bool {
    matches!(d.device_type, KDL_CPU | KDL_CUDA_HOST)
}
