// nabla's CUDA kernels: every Backend op except GEMM (cuBLAS does that), for float and double.
// Compiled once per process by NVRTC when the backend is created. The formulas are those of
// nabla-core's CPU kernels (crates/nabla-core/src/cpu.rs).
//
// Launch shapes: the element-wise kernels are grid-stride loops, correct for any launch. The
// kernels that reduce in shared memory need the block shapes below, which the backend defines
// (lib.rs, `launch_defines`) before this file and launches with — one source of truth, checked
// here at compile time:
//   NABLA_REDUCE_THREADS  threads of a loss / loss_finish block (a power of two);
//   NABLA_ROWS_X, NABLA_ROWS_Y  the (columns, rows) block of sum_rows (NABLA_ROWS_X a warp);
//   NABLA_WARP  the warp width the row-wise softmax kernels assume.

#if !defined(NABLA_REDUCE_THREADS) || !defined(NABLA_ROWS_X) || !defined(NABLA_ROWS_Y) || !defined(NABLA_WARP)
#error "the launch constants are defined by nabla-cuda (compile.rs) before this file"
#endif
#if !defined(ACT_COUNT) || !defined(LOSS_COUNT) || !defined(RULE_COUNT)
#error "the op codes are defined by nabla-cuda (compile.rs, from nabla_core::codes) before this file"
#endif
static_assert((NABLA_REDUCE_THREADS & (NABLA_REDUCE_THREADS - 1)) == 0, "the loss reduction halves a power of two");
static_assert(NABLA_WARP == 32, "the softmax kernels shuffle across a 32-lane warp");
static_assert(NABLA_ROWS_X == NABLA_WARP, "sum_rows reads a warp of consecutive columns");

typedef unsigned long long u64;

// The activation, loss and update-rule codes (ACT_*, LOSS_*, RULE_*) are defined before this file
// too, generated from nabla_core's enums (nabla_core::codes::c_defines): none is kept here.

/* A quiet NaN: what an unknown activation, loss or rule code produces, so that a code the
   kernels lack shows as a non-finite loss, never as silently different maths. (The backend only
   sends codes of its Rust enums; a test checks that each has a `case` here.) */
#define NABLA_NAN __int_as_float(0x7fc00000)

#define GRID_STRIDE(i, n) for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (u64)blockDim.x * gridDim.x)

// SplitMix64's finaliser (nabla_core::dropout::mix64).
__device__ __forceinline__ u64 mix64(u64 x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

#define DEFINE_KERNELS(T, S, LOWEST)                                                                     \
__device__ __forceinline__ T sigmoid_##S(T z) {                                                    \
    if (z >= (T)0) return (T)1 / ((T)1 + exp(-z));                                                 \
    T e = exp(z);                                                                                  \
    return e / ((T)1 + e);                                                                         \
}                                                                                                  \
__device__ __forceinline__ T act_##S(int f, T alpha, T z) {                                        \
    switch (f) {                                                                                   \
    case ACT_IDENTITY: return z;                                                                   \
    case ACT_SIGMOID: return sigmoid_##S(z);                                                       \
    case ACT_TANH: return tanh(z);                                                                 \
    case ACT_RELU: return z < (T)0 ? (T)0 : z;                                                     \
    case ACT_LEAKY_RELU: return z < (T)0 ? alpha * z : z;                                          \
    case ACT_ELU: return z < (T)0 ? alpha * expm1(z) : z;                                          \
    case ACT_GELU: {                                                                               \
        T inner = (T)0.7978845608028654 * (z + (T)0.044715 * z * z * z);                           \
        return (T)0.5 * z * ((T)1 + tanh(inner));                                                 \
    }                                                                                              \
    case ACT_SOFTPLUS: return (z > (T)0 ? z : (T)0) + log1p(exp(-fabs(z)));                        \
    case ACT_SOFTSIGN: return z / ((T)1 + fabs(z));                                                \
    case ACT_GELU_ERF: return (T)0.5 * z * ((T)1 + erf(z * (T)0.7071067811865476));                \
    case ACT_SILU: return z * sigmoid_##S(z);                                                      \
    case ACT_MISH: return z * tanh((z > (T)0 ? z : (T)0) + log1p(exp(-fabs(z))));                  \
    default: return (T)NABLA_NAN; /* an unknown code never passes for the identity */             \
    }                                                                                              \
}                                                                                                  \
__device__ __forceinline__ T dact_##S(int f, T alpha, T z, T a) {                                  \
    switch (f) {                                                                                   \
    case ACT_IDENTITY: return (T)1;                                                                \
    case ACT_SIGMOID: return a * ((T)1 - a);                                                       \
    case ACT_TANH: return (T)1 - a * a;                                                            \
    case ACT_RELU: return z > (T)0 ? (T)1 : (T)0;                                                  \
    case ACT_LEAKY_RELU: return z > (T)0 ? (T)1 : alpha;                                           \
    case ACT_ELU: return z > (T)0 ? (T)1 : alpha * exp(z);                                         \
    case ACT_GELU: {                                                                               \
        T c = (T)0.7978845608028654, k = (T)0.044715;                                              \
        T t = tanh(c * (z + k * z * z * z));                                                       \
        return (T)0.5 * ((T)1 + t) + (T)0.5 * z * ((T)1 - t * t) * c * ((T)1 + (T)3 * k * z * z); \
    }                                                                                              \
    case ACT_SOFTPLUS: return sigmoid_##S(z);                                                      \
    case ACT_SOFTSIGN: { T d = (T)1 + fabs(z); return (T)1 / (d * d); }                            \
    case ACT_GELU_ERF: {                                                                           \
        T cdf = (T)0.5 * ((T)1 + erf(z * (T)0.7071067811865476));                                  \
        return cdf + z * (T)0.3989422804014327 * exp((T)-0.5 * z * z);                             \
    }                                                                                              \
    case ACT_SILU: { T s = sigmoid_##S(z); return s * ((T)1 + z * ((T)1 - s)); }                   \
    case ACT_MISH: {                                                                               \
        T t = tanh((z > (T)0 ? z : (T)0) + log1p(exp(-fabs(z))));                                  \
        return t + z * ((T)1 - t * t) * sigmoid_##S(z);                                            \
    }                                                                                              \
    default: return (T)NABLA_NAN;                                                                  \
    }                                                                                              \
}                                                                                                  \
/* y ← x ⊙ y */                                                                                    \
extern "C" __global__ void hadamard_##S(u64 n, const T* x, T* y) {                                 \
    GRID_STRIDE(i, n) { y[i] = x[i] * y[i]; }                                                      \
}                                                                                                  \
/* z[r,c] += b[c]: x strides over columns, y over rows (no division per element) */                 \
extern "C" __global__ void bias_add_##S(u64 rows, u64 cols, const T* b, T* z) {                    \
    for (u64 r = blockIdx.y; r < rows; r += gridDim.y)                                             \
        for (u64 c = (u64)blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += (u64)blockDim.x * gridDim.x) \
            z[r * cols + c] += b[c];                                                               \
}                                                                                                  \
/* a ← σ(z), element-wise */                                                                       \
extern "C" __global__ void activate_##S(u64 n, int f, T alpha, const T* z, T* a) {                 \
    GRID_STRIDE(i, n) { a[i] = act_##S(f, alpha, z[i]); }                                          \
}                                                                                                  \
/* z ← z ⊕ b, a ← σ(z), element-wise, in one pass */                                               \
extern "C" __global__ void bias_activate_##S(u64 rows, u64 cols, int f, T alpha, const T* b, T* z, T* a) { \
    for (u64 r = blockIdx.y; r < rows; r += gridDim.y)                                             \
        for (u64 c = (u64)blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += (u64)blockDim.x * gridDim.x) { \
            u64 i = r * cols + c;                                                                  \
            T v = z[i] + b[c];                                                                     \
            z[i] = v;                                                                              \
            a[i] = act_##S(f, alpha, v);                                                           \
        }                                                                                          \
}                                                                                                  \
/* δ ← δ ⊙ σ'(z), element-wise */                                                                  \
extern "C" __global__ void activate_grad_##S(u64 n, int f, T alpha, const T* z, const T* a, T* d) { \
    GRID_STRIDE(i, n) { d[i] = d[i] * dact_##S(f, alpha, z[i], a[i]); }                            \
}                                                                                                  \
/* Row-wise softmax: one warp per row. */                                                          \
extern "C" __global__ void softmax_##S(u64 rows, u64 cols, const T* z, T* a) {                     \
    u64 warps = ((u64)blockDim.x * gridDim.x) / NABLA_WARP;                                                \
    u64 lane = threadIdx.x % NABLA_WARP;                                                                   \
    for (u64 r = ((u64)blockIdx.x * blockDim.x + threadIdx.x) / NABLA_WARP; r < rows; r += warps) {        \
        const T* zr = z + r * cols;                                                                \
        T* ar = a + r * cols;                                                                      \
        T m = LOWEST;                                                                              \
        for (u64 j = lane; j < cols; j += NABLA_WARP) m = fmax(m, zr[j]);                                  \
        for (int o = 16; o > 0; o /= 2) m = fmax(m, __shfl_xor_sync(0xffffffffu, m, o));           \
        T s = 0;                                                                                   \
        for (u64 j = lane; j < cols; j += NABLA_WARP) { T e = exp(zr[j] - m); ar[j] = e; s += e; }         \
        for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(0xffffffffu, s, o);                   \
        T inv = (T)1 / s;                                                                          \
        for (u64 j = lane; j < cols; j += NABLA_WARP) ar[j] *= inv;                                        \
    }                                                                                              \
}                                                                                                  \
/* δ ← a ⊙ (δ − δ·a), row by row: one warp per row. */                                             \
extern "C" __global__ void softmax_grad_##S(u64 rows, u64 cols, const T* a, T* d) {                \
    u64 warps = ((u64)blockDim.x * gridDim.x) / NABLA_WARP;                                                \
    u64 lane = threadIdx.x % NABLA_WARP;                                                                   \
    for (u64 r = ((u64)blockIdx.x * blockDim.x + threadIdx.x) / NABLA_WARP; r < rows; r += warps) {        \
        const T* ar = a + r * cols;                                                                \
        T* dr = d + r * cols;                                                                      \
        T dot = 0;                                                                                 \
        for (u64 j = lane; j < cols; j += NABLA_WARP) dot += ar[j] * dr[j];                                \
        for (int o = 16; o > 0; o /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, o);               \
        for (u64 j = lane; j < cols; j += NABLA_WARP) dr[j] = ar[j] * (dr[j] - dot);                       \
    }                                                                                              \
}                                                                                                  \
/* Column sums over the rows of one chunk: block (NABLA_ROWS_X columns, NABLA_ROWS_Y row-strides), \
   reduced in shared memory; blockIdx.y picks the chunk of `chunk` rows. With one chunk the sums \
   go straight to out (out[c] ← α Σ_r x[r,c] + β out[c]); with several, to partial[chunk][c],  \
   which sum_rows_finish adds up in chunk order (deterministic, no atomics). */                 \
extern "C" __global__ void sum_rows_##S(u64 rows, u64 cols, u64 chunk, T alpha, const T* x, T beta, T* out, T* partial) { \
    __shared__ T part[NABLA_ROWS_Y][NABLA_ROWS_X + 1];                                             \
    u64 c = (u64)blockIdx.x * NABLA_ROWS_X + threadIdx.x;                                          \
    u64 lo = (u64)blockIdx.y * chunk, hi = lo + chunk < rows ? lo + chunk : rows;                  \
    T s = 0;                                                                                       \
    if (c < cols) for (u64 r = lo + threadIdx.y; r < hi; r += NABLA_ROWS_Y) s += x[r * cols + c];  \
    part[threadIdx.y][threadIdx.x] = s;                                                            \
    __syncthreads();                                                                               \
    if (threadIdx.y == 0 && c < cols) {                                                            \
        T t = 0;                                                                                   \
        for (int k = 0; k < NABLA_ROWS_Y; k++) t += part[k][threadIdx.x];                          \
        if (gridDim.y == 1) out[c] = beta == (T)0 ? alpha * t : alpha * t + beta * out[c];         \
        else partial[(u64)blockIdx.y * cols + c] = t;                                              \
    }                                                                                              \
}                                                                                                  \
/* out[c] ← α Σ_k partial[k][c] + β out[c] over the `chunks` chunks of sum_rows. */             \
extern "C" __global__ void sum_rows_finish_##S(u64 cols, u64 chunks, T alpha, const T* partial, T beta, T* out) { \
    GRID_STRIDE(c, cols) {                                                                         \
        T t = 0;                                                                                   \
        for (u64 k = 0; k < chunks; k++) t += partial[k * cols + c];                               \
        out[c] = beta == (T)0 ? alpha * t : alpha * t + beta * out[c];                             \
    }                                                                                              \
}                                                                                                  \
/* tot[0] ← Σ_threads total, hit[0] ← Σ_threads correct over one block of NABLA_REDUCE_THREADS    \
   threads (a power of two), halving in shared memory. */                                        \
__device__ __forceinline__ void block_sums_##S(T* tot, T* hit, T total, T correct) {              \
    tot[threadIdx.x] = total;                                                                      \
    hit[threadIdx.x] = correct;                                                                    \
    __syncthreads();                                                                               \
    for (unsigned int s = blockDim.x / 2; s > 0; s /= 2) {                                         \
        if (threadIdx.x < s) { tot[threadIdx.x] += tot[threadIdx.x + s]; hit[threadIdx.x] += hit[threadIdx.x + s]; } \
        __syncthreads();                                                                           \
    }                                                                                              \
}                                                                                                  \
/* The loss's normalisation 1/n: per sample for softmax-CE, per element otherwise. */              \
__device__ __forceinline__ T loss_scale_##S(int l, u64 rows, u64 cols) {                           \
    u64 norm = (l == LOSS_SOFTMAX_CE ? rows : rows * cols);                                        \
    return (T)1 / (T)(norm > 0 ? norm : 1);                                                        \
}                                                                                                  \
/* Loss, output error and correct count of a batch over the whole grid: threads stride over rows, \
   each block (NABLA_REDUCE_THREADS threads) reduces its sums in shared memory into              \
   partial[2·block], partial[2·block + 1]; loss_finish adds the blocks' sums in block order. */  \
extern "C" __global__ void loss_##S(int l, T param, u64 rows, u64 cols, const T* o, const T* y, T* g, T* partial) { \
    __shared__ T tot[NABLA_REDUCE_THREADS];                                                        \
    __shared__ T hit[NABLA_REDUCE_THREADS];                                                        \
    T scale = loss_scale_##S(l, rows, cols);                                                       \
    T total = 0, correct = 0;                                                                      \
    for (u64 r = (u64)blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += (u64)blockDim.x * gridDim.x) { \
        const T* orow = o + r * cols;                                                              \
        const T* yrow = y + r * cols;                                                              \
        T* grow = g + r * cols;                                                                    \
        if (l == LOSS_SOFTMAX_CE) {                                                                \
            T m = LOWEST, ysum = 0;                                                             \
            for (u64 j = 0; j < cols; j++) { m = fmax(m, orow[j]); ysum += yrow[j]; }              \
            T s = 0;                                                                               \
            for (u64 j = 0; j < cols; j++) s += exp(orow[j] - m);                                  \
            T lse = m + log(s);                                                                    \
            for (u64 j = 0; j < cols; j++) {                                                       \
                total += yrow[j] * (lse - orow[j]);                                                \
                grow[j] = (exp(orow[j] - lse) * ysum - yrow[j]) * scale;                           \
            }                                                                                      \
        } else if (l == LOSS_BCE) {                                                                \
            for (u64 j = 0; j < cols; j++) {                                                       \
                T z = orow[j], t = yrow[j];                                                        \
                total += (z > (T)0 ? z : (T)0) - z * t + log1p(exp(-fabs(z)));                    \
                grow[j] = (sigmoid_##S(z) - t) * scale;                                            \
                correct += ((z > (T)0) == (t > (T)0.5)) ? (T)1 : (T)0;                             \
            }                                                                                      \
        } else {                                                                                   \
            for (u64 j = 0; j < cols; j++) {                                                       \
                T d = orow[j] - yrow[j];                                                           \
                if (l == LOSS_MSE) { total += d * d; grow[j] = (d + d) * scale; }                  \
                else if (l == LOSS_MAE) {                                                          \
                    total += fabs(d);                                                              \
                    grow[j] = d > (T)0 ? scale : (d < (T)0 ? -scale : (T)0);                       \
                } else if (l == LOSS_HUBER) {                                                      \
                    T ad = fabs(d);                                                                \
                    total += ad <= param ? (T)0.5 * d * d : param * (ad - (T)0.5 * param);         \
                    grow[j] = fmin(fmax(d, -param), param) * scale;                                \
                } else { total = (T)NABLA_NAN; grow[j] = (T)NABLA_NAN; } /* unknown loss code */   \
            }                                                                                      \
        }                                                                                          \
        if (l != LOSS_BCE && cols > 0) { /* no columns: nothing predicted, none correct (as on the CPU) */ \
            if (cols == 1) {                                                                       \
                correct += ((orow[0] > (T)0.5) == (yrow[0] > (T)0.5)) ? (T)1 : (T)0;               \
            } else {                                                                               \
                u64 bo = 0, by = 0;                                                                \
                for (u64 j = 1; j < cols; j++) {                                                   \
                    if (orow[j] > orow[bo]) bo = j;                                                \
                    if (yrow[j] > yrow[by]) by = j;                                                \
                }                                                                                  \
                correct += bo == by ? (T)1 : (T)0;                                                 \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    block_sums_##S(tot, hit, total, correct);                                                      \
    if (threadIdx.x == 0) { partial[2 * blockIdx.x] = tot[0]; partial[2 * blockIdx.x + 1] = hit[0]; } \
}                                                                                                  \
/* stats[0] ← (Σ_blocks total)·scale, stats[1] ← Σ_blocks correct: one block of                  \
   NABLA_REDUCE_THREADS threads, fixed order. */                                                  \
extern "C" __global__ void loss_finish_##S(int l, u64 rows, u64 cols, u64 blocks, const T* partial, T* stats) { \
    __shared__ T tot[NABLA_REDUCE_THREADS];                                                        \
    __shared__ T hit[NABLA_REDUCE_THREADS];                                                        \
    T total = 0, correct = 0;                                                                      \
    for (u64 b = threadIdx.x; b < blocks; b += blockDim.x) { total += partial[2 * b]; correct += partial[2 * b + 1]; } \
    block_sums_##S(tot, hit, total, correct);                                                      \
    if (threadIdx.x == 0) { stats[0] = tot[0] * loss_scale_##S(l, rows, cols); stats[1] = hit[0]; } \
}                                                                                                  \
/* One optimizer step (nabla_core::cpu::update): p = rule parameters, c1/c2 Adam's corrections. */ \
extern "C" __global__ void update_##S(u64 n, int rule, T lr, T l2, T decay, T p0, T p1, T p2, T p3, \
                                      T c1, T c2, T* w, const T* g, T* s0, T* s1) {                \
    T shrink = (T)1 - lr * decay;                                                                  \
    GRID_STRIDE(i, n) {                                                                            \
        T wi = w[i];                                                                               \
        if (decay != (T)0) wi = wi * shrink;                                                       \
        T gi = l2 != (T)0 ? g[i] + l2 * wi : g[i];                                                 \
        switch (rule) {                                                                            \
        case RULE_SGD: wi = wi - lr * gi; break;                                                   \
        case RULE_MOMENTUM: case RULE_NESTEROV: {                                                  \
            T v = p0 * s0[i] + gi; s0[i] = v;                                                      \
            wi = wi - lr * (rule == RULE_NESTEROV ? gi + p0 * v : v); break;                       \
        }                                                                                          \
        case RULE_ADAGRAD: { T s = s0[i] + gi * gi; s0[i] = s; wi = wi - lr * gi / (sqrt(s) + p0); break; } \
        case RULE_RMSPROP: {                                                                       \
            T s = p0 * s0[i] + ((T)1 - p0) * gi * gi; s0[i] = s;                                   \
            wi = wi - lr * gi / (sqrt(s) + p1); break;                                             \
        }                                                                                          \
        case RULE_ADAM: {                                                                          \
            T m = p0 * s0[i] + ((T)1 - p0) * gi; T v = p1 * s1[i] + ((T)1 - p1) * gi * gi;        \
            s0[i] = m; s1[i] = v;                                                                  \
            wi = wi - (lr / c1) * m / (sqrt(v / c2) + p2); break;                                  \
        }                                                                                          \
        case RULE_RPROP: {                                                                         \
            T prev = s0[i], step = s1[i], trend = prev * gi;                                       \
            if (trend < (T)0) { step = fmax(step * p0, p2); s0[i] = (T)0; }                        \
            else {                                                                                 \
                if (trend > (T)0) step = fmin(step * p1, p3);                                      \
                T sg = gi > (T)0 ? (T)1 : (gi < (T)0 ? (T)-1 : (T)0);                              \
                wi = wi - sg * step; s0[i] = gi;                                                   \
            }                                                                                      \
            s1[i] = step; break;                                                                   \
        }                                                                                          \
        default: wi = (T)NABLA_NAN; /* an unknown rule never leaves the weights silently still */ \
        }                                                                                          \
        w[i] = wi;                                                                                 \
    }                                                                                              \
}                                                                                                  \
/* mask[i] ← keep(seed, i) ? 1/(1 − rate) : 0 (nabla_core::dropout). */                            \
extern "C" __global__ void dropout_mask_##S(u64 n, u64 threshold, u64 seed, u64 first, T kept, T* mask) { \
    GRID_STRIDE(i, n) { mask[i] = (mix64(seed ^ mix64(first + i)) >> 11) >= threshold ? kept : (T)0; } \
}

DEFINE_KERNELS(float, f32, -3.402823466e38f)
DEFINE_KERNELS(double, f64, -1.7976931348623157e308)
