//! The OpenBLAS backend against the reference: the conformance kit, once per GEMM provider
//! (`auto` may take either per shape; each is also forced).

use nabla_core::GemmProvider;
use nabla_openblas::OpenBlas;

nabla_backend_tests::conformance_tests!(auto, Some(OpenBlas::new(Some(2)).unwrap()));
nabla_backend_tests::conformance_tests!(gemm_native, Some(OpenBlas::with_gemm(Some(2), GemmProvider::Native).unwrap()));
nabla_backend_tests::conformance_tests!(
    gemm_openblas,
    Some(OpenBlas::with_gemm(Some(2), GemmProvider::OpenBlas).unwrap())
);
