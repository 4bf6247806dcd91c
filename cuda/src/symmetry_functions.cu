// Symmetry functions G2/G4/G5 on the GPU: one thread per centre atom, looping over its
// edges and edge pairs (definitions and layout: cpp/ops/src/symmetry_functions.cpp).
// Each thread writes only its atom's descriptor row and its own edges' gradients, so
// there are no atomics and the result does not depend on scheduling.
#include "launch.cuh"
#include "mlff/cuda/kernels.h"


namespace mlff {
namespace cuda {
namespace {

template <typename T>
struct V3 {
  T x, y, z;
};
template <typename T> MLFF_HD V3<T> sub(const V3<T> &a, const V3<T> &b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
template <typename T> MLFF_HD T dot(const V3<T> &a, const V3<T> &b) { return a.x * b.x + a.y * b.y + a.z * b.z; }

// x^p for p ≥ 0 (integer exponents by multiplication, so x = 0 is exact)
template <typename S, typename T>
__device__ T power(const T &x, S p)
{
  using std::pow;
  const int pi = static_cast<int>(p);
  return (static_cast<S>(pi) == p && pi >= 0 && pi <= 64) ? ipow(x, pi) : pow(x, p);
}

template <typename S, typename T>
__device__ void cutoff_fn(const SfArgs &a, const T &r, T &fc, T &dfc)
{
  using std::cos;
  using std::sin;
  const S rc = static_cast<S>(a.r_c);
  if (a.cutoff == 0) {
    const S k = static_cast<S>(3.14159265358979323846) / rc;
    fc = S(0.5) * (cos(r * k) + S(1));
    dfc = S(-0.5) * k * sin(r * k);
  } else {
    const S g = static_cast<S>(a.gamma);
    const T x = r / rc;
    const T xg1 = power(x, g - S(1));
    const T xg = xg1 * x;
    fc = S(1) + g * xg * x - (g + S(1)) * xg;
    dfc = (g * (g + S(1)) / rc) * (xg - xg1);
  }
}

__device__ inline int64_t pair_channel(int64_t a, int64_t b, int64_t S)
{
  if (a > b) {
    const int64_t t = a;
    a = b;
    b = t;
  }
  return a * S - a * (a - 1) / 2 + (b - a);
}

template <typename T>
__device__ V3<T> load(const T *vec, int64_t e)
{
  return {vec[3 * e], vec[3 * e + 1], vec[3 * e + 2]};
}

template <typename S, typename T>
__global__ void forward_kernel(SfArgs a, const T *vec, T *out)
{
  using std::exp;
  using std::sqrt;
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= a.n_atoms) return;
  T *row = out + i * a.F;
  const S rc = static_cast<S>(a.r_c);
  const int64_t lo = a.offset[i], hi = a.offset[i + 1];
  for (int64_t t = lo; t < hi; ++t) {
    const int64_t e = a.order[t];
    const V3<T> v = load(vec, e);
    const T r = sqrt(dot(v, v));
    if (!(value(r) < rc)) continue;
    T fc, dfc;
    cutoff_fn<S>(a, r, fc, dfc);
    T *block = row + a.neighbour_species[e] * a.R;
    for (int64_t p = 0; p < a.R; ++p) {
      const T d = r - static_cast<S>(a.radial[2 * p + 1]);
      block[p] += exp(-static_cast<S>(a.radial[2 * p]) * (d * d)) * fc;
    }
  }
  if (a.A == 0) return;
  T *ang = row + a.n_species * a.R;
  for (int64_t ta = lo; ta < hi; ++ta) {
    const int64_t ea = a.order[ta];
    const V3<T> va = load(vec, ea);
    const T ra2 = dot(va, va), ra = sqrt(ra2);
    if (!(value(ra) < rc)) continue;
    T fa, dfa;
    cutoff_fn<S>(a, ra, fa, dfa);
    for (int64_t tb = ta + 1; tb < hi; ++tb) {
      const int64_t eb = a.order[tb];
      const V3<T> vb = load(vec, eb);
      const T rb2 = dot(vb, vb), rb = sqrt(rb2);
      if (!(value(rb) < rc)) continue;
      T fb, dfb, fab(0), dfab(0);
      cutoff_fn<S>(a, rb, fb, dfb);
      const V3<T> vab = sub(vb, va);
      const T rab2 = dot(vab, vab);
      const bool close = value(rab2) < a.r_c * a.r_c;
      if (close) cutoff_fn<S>(a, sqrt(rab2), fab, dfab);
      const T c = dot(va, vb) / (ra * rb);
      T *block = ang + pair_channel(a.neighbour_species[ea], a.neighbour_species[eb], a.n_species) * a.A;
      for (int64_t p = 0; p < a.A; ++p) {
        const double *q = a.angular + 4 * p;
        const bool g4 = q[0] == 4.0;
        if (g4 && !close) continue;
        const S eta = static_cast<S>(q[1]), zeta = static_cast<S>(q[2]), lam = static_cast<S>(q[3]);
        const T angle = static_cast<S>(exp2(1.0 - q[2])) * power(S(1) + lam * c, zeta);
        const T s = g4 ? ra2 + rb2 + rab2 : ra2 + rb2;
        const T f = g4 ? fa * fb * fab : fa * fb;
        block[p] += angle * exp(-eta * s) * f;
      }
    }
  }
}

template <typename S, typename T>
__device__ void axpy(V3<T> &acc, const T &k, const V3<T> &v)
{
  acc.x += k * v.x;
  acc.y += k * v.y;
  acc.z += k * v.z;
}

template <typename S, typename T>
__device__ void store_add(T *gvec, int64_t e, const V3<T> &g)
{
  gvec[3 * e] += g.x;
  gvec[3 * e + 1] += g.y;
  gvec[3 * e + 2] += g.z;
}

template <typename S, typename T>
__global__ void backward_kernel(SfArgs a, const T *vec, const S *grad, T *gvec)
{
  using std::exp;
  using std::sqrt;
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= a.n_atoms) return;
  const S *row = grad + i * a.F;
  const S rc = static_cast<S>(a.r_c);
  const int64_t lo = a.offset[i], hi = a.offset[i + 1];
  for (int64_t t = lo; t < hi; ++t) {    // G2: along the unit vector
    const int64_t e = a.order[t];
    const V3<T> v = load(vec, e);
    const T r = sqrt(dot(v, v));
    if (!(value(r) < rc)) continue;
    T fc, dfc;
    cutoff_fn<S>(a, r, fc, dfc);
    const S *block = row + a.neighbour_species[e] * a.R;
    T dgdr(0);
    for (int64_t p = 0; p < a.R; ++p) {
      const S eta = static_cast<S>(a.radial[2 * p]);
      const T d = r - static_cast<S>(a.radial[2 * p + 1]);
      dgdr += block[p] * exp(-eta * (d * d)) * (dfc - S(2) * eta * d * fc);
    }
    V3<T> g{T(0), T(0), T(0)};
    axpy<S>(g, dgdr / r, v);
    store_add<S>(gvec, e, g);
  }
  if (a.A == 0) return;
  const S *ang = row + a.n_species * a.R;
  for (int64_t ta = lo; ta < hi; ++ta) {
    const int64_t ea = a.order[ta];
    const V3<T> va = load(vec, ea);
    const T ra2 = dot(va, va), ra = sqrt(ra2);
    if (!(value(ra) < rc)) continue;
    T fa, dfa;
    cutoff_fn<S>(a, ra, fa, dfa);
    V3<T> ga{T(0), T(0), T(0)};
    for (int64_t tb = ta + 1; tb < hi; ++tb) {
      const int64_t eb = a.order[tb];
      const V3<T> vb = load(vec, eb);
      const T rb2 = dot(vb, vb), rb = sqrt(rb2);
      if (!(value(rb) < rc)) continue;
      T fb, dfb, fab(0), dfab(0), rab(1);
      cutoff_fn<S>(a, rb, fb, dfb);
      const V3<T> vab = sub(vb, va);
      const T rab2 = dot(vab, vab);
      const bool close = value(rab2) < a.r_c * a.r_c;
      if (close) {
        rab = sqrt(rab2);
        cutoff_fn<S>(a, rab, fab, dfab);
      }
      const T c = dot(va, vb) / (ra * rb);
      const S *block = ang + pair_channel(a.neighbour_species[ea], a.neighbour_species[eb], a.n_species) * a.A;
      // weights of dc, ds (G4: s includes r_ab²) and dF, as in the CPU kernel
      T wc(0), ws4(0), ws5(0), wf4(0), wf5(0);
      for (int64_t p = 0; p < a.A; ++p) {
        const S w = block[p];
        const double *q = a.angular + 4 * p;
        const bool g4 = q[0] == 4.0;
        if (w == S(0) || (g4 && !close)) continue;
        const S eta = static_cast<S>(q[1]), zeta = static_cast<S>(q[2]), lam = static_cast<S>(q[3]);
        const S pref = static_cast<S>(exp2(1.0 - q[2]));
        const T base = S(1) + lam * c;
        const T lower = power(base, zeta - S(1));
        const T angle = pref * lower * base, dangle = pref * zeta * lam * lower;
        const T f = g4 ? fa * fb * fab : fa * fb;
        const T qv = w * exp(-eta * (g4 ? ra2 + rb2 + rab2 : ra2 + rb2));
        wc += qv * dangle * f;
        if (g4) {
          ws4 -= eta * qv * angle * f;
          wf4 += qv * angle;
        } else {
          ws5 -= eta * qv * angle * f;
          wf5 += qv * angle;
        }
      }
      const T rarb = ra * rb;
      const T sa = S(2) * (ws4 + ws5), sab = S(2) * ws4;
      const T fterm = wf4 * fab + wf5;
      T kab = sab;
      if (close) kab += wf4 * fa * fb * dfab / rab;
      V3<T> gb{T(0), T(0), T(0)};
      axpy<S>(ga, sa - wc * c / ra2 + fterm * dfa * fb / ra, va);
      axpy<S>(ga, wc / rarb, vb);
      axpy<S>(ga, -kab, vab);
      axpy<S>(gb, sa - wc * c / rb2 + fterm * fa * dfb / rb, vb);
      axpy<S>(gb, wc / rarb, va);
      axpy<S>(gb, kab, vab);
      store_add<S>(gvec, eb, gb);
    }
    store_add<S>(gvec, ea, ga);
  }
}


constexpr int kThreads = 128;

inline unsigned blocks(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }


}    // namespace

template <typename T>
void sf_forward(const SfArgs &a, const T *vec, T *out, cudaStream_t stream)
{
  if (a.n_atoms == 0) return;
  MLFF_LAUNCH(blocks(a.n_atoms), kThreads, stream, forward_kernel<typename ScalarOf<T>::type, T>)(a, vec, out);
  check(cudaGetLastError(), "symmetry_functions forward");
}

template <typename T, typename S>
void sf_backward(const SfArgs &a, const T *vec, const S *grad, T *gvec, cudaStream_t stream)
{
  if (a.n_atoms == 0) return;
  MLFF_LAUNCH(blocks(a.n_atoms), kThreads, stream, backward_kernel<S, T>)(a, vec, grad, gvec);
  check(cudaGetLastError(), "symmetry_functions backward");
}

template void sf_forward<float>(const SfArgs &, const float *, float *, cudaStream_t);
template void sf_forward<double>(const SfArgs &, const double *, double *, cudaStream_t);
template void sf_forward<Dual<float>>(const SfArgs &, const Dual<float> *, Dual<float> *, cudaStream_t);
template void sf_forward<Dual<double>>(const SfArgs &, const Dual<double> *, Dual<double> *, cudaStream_t);
template void sf_backward<float, float>(const SfArgs &, const float *, const float *, float *, cudaStream_t);
template void sf_backward<double, double>(const SfArgs &, const double *, const double *, double *, cudaStream_t);
template void sf_backward<Dual<float>, float>(const SfArgs &, const Dual<float> *, const float *, Dual<float> *,
                                              cudaStream_t);
template void sf_backward<Dual<double>, double>(const SfArgs &, const Dual<double> *, const double *, Dual<double> *,
                                                cudaStream_t);

}    // namespace cuda
}    // namespace mlff
