//! `Counted<Cpu>` is a backend like any other: the whole conformance suite, one line.
tensorbridge_conformance::conformance_suite!(
    tensorbridge_counted::Counted<tensorbridge_cpu::Cpu>,
    tensorbridge_core::Device::Cpu
);
