// Atom-centred symmetry functions G2/G4/G5 on the CPU, vectorised across neighbours and
// triplets: the forward G, its directional derivative J u along edge-vector tangents u
// (the double backward of force training) and the backward Jᵀg (forces), on plain
// float/double.  The math, element channels and feature layout are symmetry_functions.cpp's
// (whose header cites the papers); the scalar templates there stay for the other
// second-order product, H_g u, run on dual numbers.
//
// Per centre atom i:
//   * its edges inside r_c are gathered into padded structure-of-arrays buffers, sorted
//     by neighbour species, so that for a first neighbour a the second neighbours b of one
//     species are a contiguous range with one element channel;
//   * radial terms run over neighbours, angular terms over b in vectors of W lanes
//     (W = 16/8 floats or 8/4 doubles for AVX-512/AVX2), one accumulator vector per
//     (channel, function), summed across lanes once per centre;
//   * lanes past the end of a range load f_c = f_c' = 0 (partial loads), which zeroes
//     every term and gradient of theirs; the buffers are padded with far-away, distinct
//     points, so that those lanes stay finite.
// The result does not depend on the thread split (each centre is computed alone), but
// its rounding differs from the scalar kernel's (another summation order).
//
// This file is compiled once per instruction set (CMakeLists.txt: MLFF_ISA = avx512,
// avx2 and default, with ATen's matching CPU_CAPABILITY_*); symmetry_functions.cpp picks
// one at run time.  No standard containers here: their out-of-line template code could be
// shared between the per-ISA builds by the linker.
#include "symmetry_functions_kernel.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <memory>

#define MLFF_CONCAT2(a, b) a##b
#define MLFF_CONCAT(a, b) MLFF_CONCAT2(a, b)
#define MLFF_KERNEL_NAME MLFF_CONCAT(symmetry_functions_cpu_, MLFF_ISA)

namespace mlff {
namespace {

using at::vec::Vectorized;

template <typename S>
inline S hsum(const Vectorized<S> &v)
{
  constexpr int W = Vectorized<S>::size();
  alignas(64) S t[W];
  v.store(t);
  S s = 0;
  for (int k = 0; k < W; ++k) s += t[k];
  return s;
}

// x^n for an integer n ≥ 0, on scalars and vectors.  The same as mlff::ipow (mlff/dual.h),
// kept local so that no instantiation with external linkage is compiled for this ISA.
template <typename V>
inline V ipow(V x, int n)
{
  V r(1);
  while (n > 0) {
    if (n & 1) r = r * x;
    x = x * x;
    n >>= 1;
  }
  return r;
}

// f_c(r), f_c'(r) for r < r_c (callers mask r ≥ r_c themselves)
template <typename S>
inline void cutoff_scalar(const SfTables &t, S r, S &fc, S &dfc)
{
  if (t.cutoff == 0) {
    const S k = static_cast<S>(M_PI / t.r_c);
    fc = S(0.5) * (std::cos(r * k) + S(1));
    dfc = S(-0.5) * k * std::sin(r * k);
  } else {
    const S g = static_cast<S>(t.gamma), x = r / static_cast<S>(t.r_c);
    const S xg1 = t.gamma_int >= 1 ? ipow(x, t.gamma_int - 1) : std::pow(x, g - S(1));
    const S xg = xg1 * x;
    fc = S(1) + g * xg * x - (g + S(1)) * xg;
    dfc = (g * (g + S(1)) / static_cast<S>(t.r_c)) * (xg - xg1);
  }
}

template <typename S>
inline void cutoff_vec(const SfTables &t, const Vectorized<S> &r, Vectorized<S> &fc, Vectorized<S> &dfc)
{
  using Vec = Vectorized<S>;
  if (t.cutoff == 0) {
    const S k = static_cast<S>(M_PI / t.r_c);
    const Vec x = r * Vec(k);
    fc = Vec(S(0.5)) * (x.cos() + Vec(S(1)));
    dfc = Vec(S(-0.5) * k) * x.sin();
  } else {
    const S g = static_cast<S>(t.gamma);
    const Vec x = r / Vec(static_cast<S>(t.r_c));
    const Vec xg1 = t.gamma_int >= 1 ? ipow(x, t.gamma_int - 1) : x.pow(Vec(g - S(1)));
    const Vec xg = xg1 * x;
    fc = Vec(S(1)) + Vec(g) * xg * x - Vec(g + S(1)) * xg;
    dfc = Vec(g * (g + S(1)) / static_cast<S>(t.r_c)) * (xg - xg1);
  }
}

// out[k] = exp(−η_k x) for every unique angular η
template <typename S>
inline void gaussians_vec(const SfTables &t, const Vectorized<S> &x, Vectorized<S> *out)
{
  using Vec = Vectorized<S>;
  if (t.eta_progression) {    // η_k = η_0 + kΔ: two exponentials instead of n_eta
    const Vec step = (Vec(static_cast<S>(-t.eta_step)) * x).exp();
    out[0] = (Vec(static_cast<S>(-t.eta[0])) * x).exp();
    for (int64_t k = 1; k < t.n_eta; ++k) out[k] = out[k - 1] * step;
  } else {
    for (int64_t k = 0; k < t.n_eta; ++k) out[k] = (Vec(static_cast<S>(-t.eta[k])) * x).exp();
  }
}

inline int64_t pair_channel(int64_t a, int64_t b, int64_t n_species)
{
  if (a > b) std::swap(a, b);
  return a * n_species - a * (a - 1) / 2 + (b - a);
}

// One centre's edges inside r_c, sorted by neighbour species, padded to whole vectors.
template <typename S>
struct Centre {
  static constexpr int W = Vectorized<S>::size();
  int64_t cap = 0, M = 0, padded = 0, n_eta = 0;    // M edges, padded to whole vectors plus one
  std::unique_ptr<S[]> buf;
  std::unique_ptr<int64_t[]> ibuf;
  S *x, *y, *z, *r, *fc, *dfc, *gauss, *gx, *gy, *gz;    // gauss[k·cap + m] = exp(−η_k r_m²)
  S *ux, *uy, *uz, *vu;    // J u: the edges' tangents and v·u (0 on the padding)
  int64_t *edge, *segment;    // segment[s] .. segment[s+1]: the neighbours of species s

  // buffers for the centres begin..end-1
  Centre(const SfProblem &p, int64_t begin, int64_t end)
  {
    const SfTables &t = p.t;
    int64_t max_degree = 0;
    for (int64_t i = begin; i < end; ++i) max_degree = std::max(max_degree, p.offset[i + 1] - p.offset[i]);
    n_eta = t.n_eta;
    cap = (max_degree + W - 1) / W * W + W;
    buf.reset(new S[cap * (13 + n_eta)]);
    ibuf.reset(new int64_t[cap + t.n_species + 1]);
    S *next = buf.get();
    for (S **a : {&x, &y, &z, &r, &fc, &dfc, &gx, &gy, &gz, &ux, &uy, &uz, &vu}) {
      *a = next;
      next += cap;
    }
    gauss = next;
    edge = ibuf.get();
    segment = edge + cap;
  }

  void gather(const SfProblem &p, const S *vec, int64_t i)
  {
    using Vec = Vectorized<S>;
    const SfTables &t = p.t;
    const int64_t begin = p.offset[i], end = p.offset[i + 1];
    M = 0;
    for (int64_t s = 0; s < t.n_species; ++s) {
      segment[s] = M;
      for (int64_t q = begin; q < end; ++q) {
        const int64_t e = p.order[q];
        if (p.nbr_species[e] != s) continue;
        const S vx = vec[3 * e], vy = vec[3 * e + 1], vz = vec[3 * e + 2];
        const S re = std::sqrt(vx * vx + vy * vy + vz * vz);
        if (!(re < t.r_c)) continue;    // f_c = 0 beyond the cutoff: no term, no gradient
        x[M] = vx;
        y[M] = vy;
        z[M] = vz;
        r[M] = re;
        cutoff_scalar(t, re, fc[M], dfc[M]);
        edge[M] = e;
        ++M;
      }
    }
    segment[t.n_species] = M;
    // padding: far-away distinct points, f_c = f_c' = 0
    padded = (M + W - 1) / W * W + W;
    for (int64_t m = M; m < padded; ++m) {
      const S d = static_cast<S>(1000 * (m - M + 1));
      x[m] = d;
      y[m] = S(2) * d;
      z[m] = S(3) * d;
      r[m] = std::sqrt(S(14)) * d;
      fc[m] = dfc[m] = S(0);
    }
    alignas(64) Vec g[64];
    std::unique_ptr<Vec[]> heap;
    Vec *gk = g;
    if (n_eta > 64) {
      heap.reset(new Vec[n_eta]);
      gk = heap.get();
    }
    for (int64_t m = 0; m < padded; m += W) {
      const Vec rm = Vec::loadu(r + m);
      gaussians_vec<S>(t, rm * rm, gk);
      for (int64_t k = 0; k < n_eta; ++k) gk[k].store(gauss + k * cap + m);
    }
  }

  // the tangents u of the gathered edges (after gather), and v·u
  void gather_tangent(const S *u)
  {
    for (int64_t m = 0; m < M; ++m) {
      const S *ue = u + 3 * edge[m];
      ux[m] = ue[0];
      uy[m] = ue[1];
      uz[m] = ue[2];
      vu[m] = x[m] * ue[0] + y[m] * ue[1] + z[m] * ue[2];
    }
    for (int64_t m = M; m < padded; ++m) ux[m] = uy[m] = uz[m] = vu[m] = S(0);
  }
};

// Per-thread vectors for one triplet chunk: angular factors and Gaussians.
template <typename S>
struct TripletScratch {
  using Vec = Vectorized<S>;
  std::unique_ptr<Vec[]> buf;
  Vec *angle, *dangle, *gab, *g4, *g5;
  explicit TripletScratch(const SfTables &t) : buf(new Vec[2 * t.n_lz + 3 * t.n_eta])
  {
    angle = buf.get();
    dangle = angle + t.n_lz;
    gab = dangle + t.n_lz;
    g4 = gab + t.n_eta;
    g5 = g4 + t.n_eta;
  }
};

// Everything about triplets (i, a, b..b+W) that does not depend on the function.
template <typename S>
struct TripletChunk {
  using Vec = Vectorized<S>;
  Vec vbx, vby, vbz, vabx, vaby, vabz, rb, fb, dfb, rab, fab, dfab, c, close;
  bool any_close = false;

  // false if no lane contributes
  bool set(const SfTables &t, const Centre<S> &C, int64_t a, int64_t b, int64_t cnt, bool with_dfc,
           TripletScratch<S> &ts)
  {
    constexpr int W = Vec::size();
    const Vec zero(S(0));
    vbx = Vec::loadu(C.x + b);
    vby = Vec::loadu(C.y + b);
    vbz = Vec::loadu(C.z + b);
    vabx = vbx - Vec(C.x[a]);
    vaby = vby - Vec(C.y[a]);
    vabz = vbz - Vec(C.z[a]);
    const Vec rab2 = vabx * vabx + vaby * vaby + vabz * vabz;
    const S rc = static_cast<S>(t.r_c);
    close = rab2 < Vec(rc * rc);
    any_close = close.zero_mask() != (1 << W) - 1;
    if (!any_close && !t.has_g5) return false;
    fb = Vec::loadu(C.fc + b, cnt);    // 0 on lanes past the range
    if (with_dfc) dfb = Vec::loadu(C.dfc + b, cnt);
    rb = Vec::loadu(C.r + b);
    if (t.has_g4 && any_close) {
      rab = rab2.sqrt();
      Vec f, df;
      cutoff_vec<S>(t, rab, f, df);
      fab = Vec::blendv(zero, f, close);
      dfab = Vec::blendv(zero, df, close);
      gaussians_vec<S>(t, rab2, ts.gab);
    } else {
      rab = Vec(S(1));
      fab = dfab = zero;
    }
    c = (Vec(C.x[a]) * vbx + Vec(C.y[a]) * vby + Vec(C.z[a]) * vbz) / (Vec(C.r[a]) * rb);
    for (int64_t m = 0; m < t.n_lz; ++m) {
      const S lam = static_cast<S>(t.lambda[m]), zeta = static_cast<S>(t.zeta[m]);
      const S pref = static_cast<S>(t.prefactor[m]);
      const Vec base = Vec(S(1)) + Vec(lam) * c;
      const int zi = t.zeta_int[m];
      const Vec lower = zi >= 1 ? ipow(base, zi - 1) : base.pow(Vec(zeta - S(1)));    // (1+λc)^{ζ−1}
      ts.angle[m] = Vec(pref) * lower * base;
      ts.dangle[m] = Vec(pref * zeta * lam) * lower;
    }
    const S *ga = C.gauss + a;
    for (int64_t k = 0; k < t.n_eta; ++k) {
      ts.g5[k] = Vec(ga[k * C.cap]) * Vec::loadu(C.gauss + k * C.cap + b);
      ts.g4[k] = (t.has_g4 && any_close) ? Vec::blendv(zero, ts.g5[k] * ts.gab[k], close) : zero;
    }
    return true;
  }
};

// ---------------------------------------------------------------------------- forward
template <typename S>
void forward_rows(const SfProblem &p, int64_t begin, int64_t end)
{
  using Vec = Vectorized<S>;
  constexpr int W = Vec::size();
  const SfTables &t = p.t;
  const S *vec = static_cast<const S *>(p.vec);
  S *out = static_cast<S *>(p.out);
  const int64_t n_pairs = t.n_species * (t.n_species + 1) / 2;
  Centre<S> C(p, begin, end);
  TripletScratch<S> ts(t);
  std::unique_ptr<Vec[]> acc(new Vec[std::max<int64_t>(1, n_pairs * t.A)]);
  for (int64_t i = begin; i < end; ++i) {
    C.gather(p, vec, i);
    S *row = out + i * t.F;
    for (int64_t s = 0; s < t.n_species; ++s) {    // G2, one species block at a time
      const int64_t m0 = C.segment[s], m1 = C.segment[s + 1];
      if (m0 == m1) continue;
      for (int64_t q = 0; q < t.R; ++q) {
        const Vec mEta(static_cast<S>(-t.rad_eta[q])), rs(static_cast<S>(t.rad_rs[q]));
        Vec sum(S(0));
        for (int64_t m = m0; m < m1; m += W) {
          const Vec d = Vec::loadu(C.r + m) - rs;
          sum = sum + (mEta * d * d).exp() * Vec::loadu(C.fc + m, std::min<int64_t>(W, m1 - m));
        }
        row[s * t.R + q] += hsum(sum);
      }
    }
    if (t.A == 0) continue;
    std::fill(acc.get(), acc.get() + n_pairs * t.A, Vec(S(0)));
    for (int64_t sa = 0; sa < t.n_species; ++sa) {
      for (int64_t a = C.segment[sa]; a < C.segment[sa + 1]; ++a) {
        const Vec fa(C.fc[a]);
        for (int64_t sb = sa; sb < t.n_species; ++sb) {
          const int64_t b0 = std::max(C.segment[sb], a + 1), b1 = C.segment[sb + 1];
          Vec *block = acc.get() + pair_channel(sa, sb, t.n_species) * t.A;
          for (int64_t b = b0; b < b1; b += W) {
            TripletChunk<S> tc;
            if (!tc.set(t, C, a, b, std::min<int64_t>(W, b1 - b), false, ts)) continue;
            const Vec f5 = fa * tc.fb, f4 = f5 * tc.fab;
            for (int64_t q = 0; q < t.A; ++q) {
              const Vec &ang = ts.angle[t.lz_of[q]];
              block[q] = t.kind[q] == 4 ? block[q] + ang * ts.g4[t.eta_of[q]] * f4
                                        : block[q] + ang * ts.g5[t.eta_of[q]] * f5;
            }
          }
        }
      }
    }
    S *ang_row = row + t.n_species * t.R;
    for (int64_t q = 0; q < n_pairs * t.A; ++q) ang_row[q] += hsum(acc[q]);
  }
}

// ---------------------------------------------------------------------------- J u
// d/dε G(v + ε u).  With r' = v·u / r for every edge, per term:
//   G2:  exp(−η (r − r_s)²) (f_c'(r) − 2η (r − r_s) f_c(r)) · r'
//   G4/G5 = A(c) · exp(−η s) · F:  A'(c) c' · e F + A · e · (−η s' F + F'), with
//     s = r_a² + r_b² (+ r_ab² for G4), F = f_a f_b (· f_ab for G4),
//     c' = (u_a·v_b + v_a·u_b) / (r_a r_b) − c (r_a'/r_a + r_b'/r_b).
template <typename S>
void jvp_rows(const SfProblem &p, int64_t begin, int64_t end)
{
  using Vec = Vectorized<S>;
  constexpr int W = Vec::size();
  const SfTables &t = p.t;
  const S *vec = static_cast<const S *>(p.vec), *tangent = static_cast<const S *>(p.tangent);
  S *out = static_cast<S *>(p.out);
  const int64_t n_pairs = t.n_species * (t.n_species + 1) / 2;
  Centre<S> C(p, begin, end);
  TripletScratch<S> ts(t);
  std::unique_ptr<Vec[]> acc(new Vec[std::max<int64_t>(1, n_pairs * t.A)]);
  const Vec two(S(2));
  for (int64_t i = begin; i < end; ++i) {
    C.gather(p, vec, i);
    C.gather_tangent(tangent);
    S *row = out + i * t.F;
    for (int64_t s = 0; s < t.n_species; ++s) {
      const int64_t m0 = C.segment[s], m1 = C.segment[s + 1];
      if (m0 == m1) continue;
      for (int64_t q = 0; q < t.R; ++q) {
        const S eta = static_cast<S>(t.rad_eta[q]);
        const Vec rs(static_cast<S>(t.rad_rs[q]));
        Vec sum(S(0));
        for (int64_t m = m0; m < m1; m += W) {
          const int64_t cnt = std::min<int64_t>(W, m1 - m);
          const Vec rm = Vec::loadu(C.r + m), d = rm - rs;
          const Vec f = Vec::loadu(C.fc + m, cnt), df = Vec::loadu(C.dfc + m, cnt);
          sum = sum + (Vec(-eta) * d * d).exp() * (df - Vec(S(2) * eta) * d * f) * (Vec::loadu(C.vu + m) / rm);
        }
        row[s * t.R + q] += hsum(sum);
      }
    }
    if (t.A == 0) continue;
    std::fill(acc.get(), acc.get() + n_pairs * t.A, Vec(S(0)));
    for (int64_t sa = 0; sa < t.n_species; ++sa) {
      for (int64_t a = C.segment[sa]; a < C.segment[sa + 1]; ++a) {
        const S ra = C.r[a];
        const Vec fa(C.fc[a]), vax(C.x[a]), vay(C.y[a]), vaz(C.z[a]), uax(C.ux[a]), uay(C.uy[a]), uaz(C.uz[a]);
        const S dra_s = C.vu[a] / ra;    // r_a'
        const Vec dra(dra_s), dfa(C.dfc[a] * dra_s), dsa(S(2) * C.vu[a]);
        for (int64_t sb = sa; sb < t.n_species; ++sb) {
          const int64_t b0 = std::max(C.segment[sb], a + 1), b1 = C.segment[sb + 1];
          Vec *block = acc.get() + pair_channel(sa, sb, t.n_species) * t.A;
          for (int64_t b = b0; b < b1; b += W) {
            TripletChunk<S> tc;
            if (!tc.set(t, C, a, b, std::min<int64_t>(W, b1 - b), true, ts)) continue;
            const Vec ubx = Vec::loadu(C.ux + b), uby = Vec::loadu(C.uy + b), ubz = Vec::loadu(C.uz + b);
            const Vec vub = Vec::loadu(C.vu + b), drb = vub / tc.rb;
            // v_ab · u_ab, u_ab = u_b − u_a
            const Vec vuab = tc.vabx * (ubx - uax) + tc.vaby * (uby - uay) + tc.vabz * (ubz - uaz);
            const Vec dc = (uax * tc.vbx + uay * tc.vby + uaz * tc.vbz + vax * ubx + vay * uby + vaz * ubz) /
                               (Vec(ra) * tc.rb) -
                           tc.c * (dra / Vec(ra) + drb / tc.rb);
            const Vec f5 = fa * tc.fb, f4 = f5 * tc.fab;
            const Vec df5 = dfa * tc.fb + fa * tc.dfb * drb;
            const Vec df4 = df5 * tc.fab + f5 * tc.dfab * (vuab / tc.rab);    // dfab = 0 where r_ab ≥ r_c
            const Vec ds5 = dsa + two * vub, ds4 = ds5 + two * vuab;
            const Vec c4 = dc * f4, c5 = dc * f5, s4 = ds4 * f4, s5 = ds5 * f5;
            for (int64_t q = 0; q < t.A; ++q) {
              const Vec &ang = ts.angle[t.lz_of[q]], &dang = ts.dangle[t.lz_of[q]];
              const int64_t k = t.eta_of[q];
              const Vec mEta(static_cast<S>(-t.eta[k]));
              block[q] = t.kind[q] == 4 ? block[q] + ts.g4[k] * (dang * c4 + ang * (mEta * s4 + df4))
                                        : block[q] + ts.g5[k] * (dang * c5 + ang * (mEta * s5 + df5));
            }
          }
        }
      }
    }
    S *ang_row = row + t.n_species * t.R;
    for (int64_t q = 0; q < n_pairs * t.A; ++q) ang_row[q] += hsum(acc[q]);
  }
}

// ---------------------------------------------------------------------------- backward
// ∂L/∂v_e = Σ_p g[i, p] ∂G[i, p]/∂v_e for the centre i of edge e.
template <typename S>
void backward_rows(const SfProblem &p, int64_t begin, int64_t end)
{
  using Vec = Vectorized<S>;
  constexpr int W = Vec::size();
  const SfTables &t = p.t;
  const S *vec = static_cast<const S *>(p.vec);
  const S *grad = static_cast<const S *>(p.grad);
  S *gvec = static_cast<S *>(p.out);
  Centre<S> C(p, begin, end);
  TripletScratch<S> ts(t);
  const Vec two(S(2));
  for (int64_t i = begin; i < end; ++i) {
    C.gather(p, vec, i);
    const S *row = grad + i * t.F;
    const int64_t M = C.M;
    // G2: dG/dr along the unit vector
    for (int64_t s = 0; s < t.n_species; ++s) {
      const int64_t m0 = C.segment[s], m1 = C.segment[s + 1];
      const S *w = row + s * t.R;
      for (int64_t m = m0; m < m1; m += W) {
        const int64_t cnt = std::min<int64_t>(W, m1 - m);
        const Vec rm = Vec::loadu(C.r + m), f = Vec::loadu(C.fc + m), df = Vec::loadu(C.dfc + m);
        Vec dg(S(0));
        for (int64_t q = 0; q < t.R; ++q) {
          if (w[q] == S(0)) continue;
          const S eta = static_cast<S>(t.rad_eta[q]);
          const Vec d = rm - Vec(static_cast<S>(t.rad_rs[q]));
          dg = dg + Vec(w[q]) * (Vec(-eta) * d * d).exp() * (df - Vec(S(2) * eta) * d * f);
        }
        const Vec k = dg / rm;
        (k * Vec::loadu(C.x + m)).store(C.gx + m, cnt);
        (k * Vec::loadu(C.y + m)).store(C.gy + m, cnt);
        (k * Vec::loadu(C.z + m)).store(C.gz + m, cnt);
      }
    }
    if (t.A > 0) {
      const S *ang_row = row + t.n_species * t.R;
      for (int64_t sa = 0; sa < t.n_species; ++sa) {
        for (int64_t a = C.segment[sa]; a < C.segment[sa + 1]; ++a) {
          const Vec vax(C.x[a]), vay(C.y[a]), vaz(C.z[a]), ra(C.r[a]), fa(C.fc[a]), dfa(C.dfc[a]);
          Vec accx(S(0)), accy(S(0)), accz(S(0));
          for (int64_t sb = sa; sb < t.n_species; ++sb) {
            const int64_t b0 = std::max(C.segment[sb], a + 1), b1 = C.segment[sb + 1];
            if (b0 >= b1) continue;
            const S *w = ang_row + pair_channel(sa, sb, t.n_species) * t.A;
            bool any = false;
            for (int64_t q = 0; q < t.A && !any; ++q) any = w[q] != S(0);
            if (!any) continue;
            for (int64_t b = b0; b < b1; b += W) {
              const int64_t cnt = std::min<int64_t>(W, b1 - b);
              TripletChunk<S> tc;
              if (!tc.set(t, C, a, b, cnt, true, ts)) continue;
              const Vec f5 = fa * tc.fb, f4 = f5 * tc.fab;
              // term = angle(c) · gauss(s_kind) · F_kind: the weights of dc, ds_kind and dF_kind
              Vec wc(S(0)), ws4(S(0)), ws5(S(0)), wf4(S(0)), wf5(S(0));
              for (int64_t q = 0; q < t.A; ++q) {
                if (w[q] == S(0)) continue;
                const Vec &ang = ts.angle[t.lz_of[q]], &dang = ts.dangle[t.lz_of[q]];
                const int64_t k = t.eta_of[q];
                const Vec mEta(static_cast<S>(-t.eta[k]));
                if (t.kind[q] == 4) {
                  const Vec qv = Vec(w[q]) * ts.g4[k];
                  wc = wc + qv * dang * f4;
                  const Vec qa = qv * ang;
                  ws4 = ws4 + mEta * qa * f4;
                  wf4 = wf4 + qa;
                } else {
                  const Vec qv = Vec(w[q]) * ts.g5[k];
                  wc = wc + qv * dang * f5;
                  const Vec qa = qv * ang;
                  ws5 = ws5 + mEta * qa * f5;
                  wf5 = wf5 + qa;
                }
              }
              const Vec rarb = ra * tc.rb;
              const Vec ca = tc.c / (ra * ra), cb = tc.c / (tc.rb * tc.rb);
              const Vec sa_ = two * (ws4 + ws5), sab = two * ws4;
              const Vec wf = wf4 * tc.fab + wf5;
              const Vec fa_u = wf * dfa * tc.fb / ra;          // coefficient of va
              const Vec fb_u = wf * fa * tc.dfb / tc.rb;       // coefficient of vb
              const Vec fab_u = wf4 * f5 * tc.dfab / tc.rab;   // coefficient of vab (0 where r_ab ≥ r_c)
              const Vec kva = sa_ - wc * ca + fa_u, kab_ = wc / rarb;
              const Vec kvb = sa_ - wc * cb + fb_u;
              const Vec kab = sab + fab_u;
              accx = accx + kva * vax + kab_ * tc.vbx - kab * tc.vabx;
              accy = accy + kva * vay + kab_ * tc.vby - kab * tc.vaby;
              accz = accz + kva * vaz + kab_ * tc.vbz - kab * tc.vabz;
              (Vec::loadu(C.gx + b, cnt) + kvb * tc.vbx + kab_ * vax + kab * tc.vabx).store(C.gx + b, cnt);
              (Vec::loadu(C.gy + b, cnt) + kvb * tc.vby + kab_ * vay + kab * tc.vaby).store(C.gy + b, cnt);
              (Vec::loadu(C.gz + b, cnt) + kvb * tc.vbz + kab_ * vaz + kab * tc.vabz).store(C.gz + b, cnt);
            }
          }
          C.gx[a] += hsum(accx);
          C.gy[a] += hsum(accy);
          C.gz[a] += hsum(accz);
        }
      }
    }
    for (int64_t m = 0; m < M; ++m) {
      S *o = gvec + 3 * C.edge[m];
      o[0] = C.gx[m];
      o[1] = C.gy[m];
      o[2] = C.gz[m];
    }
  }
}

template <typename S>
void run(const SfProblem &p)
{
  constexpr int64_t kGrain = 16;    // centre atoms per parallel task
  at::parallel_for(0, p.n_atoms, kGrain, [&](int64_t b, int64_t e) {
    if (p.grad)
      backward_rows<S>(p, b, e);
    else if (p.tangent)
      jvp_rows<S>(p, b, e);
    else
      forward_rows<S>(p, b, e);
  });
}

}    // namespace

void MLFF_KERNEL_NAME(const SfProblem &p)
{
  if (p.is_double)
    run<double>(p);
  else
    run<float>(p);
}

}    // namespace mlff
