// Forward-mode dual numbers, x = v + d·ε with ε² = 0.
//
// The symmetry-function kernels are written once as templates over their value type.
// Run on plain floats they give G and its gradient; run on Dual<float> with the
// positions' tangent in `d`, the same code gives the directional derivative of its
// result: the Jacobian-vector product of the forward kernel, and the Hessian-vector
// product of the backward kernel (what double backward needs).  Only the operations
// those kernels use are defined.
#ifndef MLFF_DUAL_H
#define MLFF_DUAL_H

#include <cmath>

// Usable from CUDA kernels (cuda/) as well as from the CPU code.
#if defined(__CUDACC__)
#define MLFF_HD __host__ __device__
#else
#define MLFF_HD
#endif

namespace mlff {

template <typename S>
struct Dual {
  S v{0}, d{0};
  Dual() = default;
  MLFF_HD Dual(S value) : v(value), d(0) {}    // NOLINT: constants promote implicitly
  MLFF_HD Dual(S value, S tangent) : v(value), d(tangent) {}
  MLFF_HD Dual &operator+=(const Dual &o) { v += o.v; d += o.d; return *this; }
  MLFF_HD Dual &operator-=(const Dual &o) { v -= o.v; d -= o.d; return *this; }
  MLFF_HD Dual &operator*=(const Dual &o) { d = d * o.v + v * o.d; v *= o.v; return *this; }
};

template <typename S> MLFF_HD inline Dual<S> operator+(Dual<S> a, const Dual<S> &b) { return a += b; }
template <typename S> MLFF_HD inline Dual<S> operator-(Dual<S> a, const Dual<S> &b) { return a -= b; }
template <typename S> MLFF_HD inline Dual<S> operator*(Dual<S> a, const Dual<S> &b) { return a *= b; }
template <typename S> MLFF_HD inline Dual<S> operator-(const Dual<S> &a) { return {-a.v, -a.d}; }
template <typename S> MLFF_HD inline Dual<S> operator/(const Dual<S> &a, const Dual<S> &b)
{
  S q = a.v / b.v;
  return {q, (a.d - q * b.d) / b.v};
}
// mixed with a plain scalar (S on either side)
template <typename S> MLFF_HD inline Dual<S> operator+(Dual<S> a, S b) { a.v += b; return a; }
template <typename S> MLFF_HD inline Dual<S> operator+(S b, Dual<S> a) { a.v += b; return a; }
template <typename S> MLFF_HD inline Dual<S> operator-(Dual<S> a, S b) { a.v -= b; return a; }
template <typename S> MLFF_HD inline Dual<S> operator-(S b, const Dual<S> &a) { return {b - a.v, -a.d}; }
template <typename S> MLFF_HD inline Dual<S> operator*(const Dual<S> &a, S b) { return {a.v * b, a.d * b}; }
template <typename S> MLFF_HD inline Dual<S> operator*(S b, const Dual<S> &a) { return {a.v * b, a.d * b}; }
template <typename S> MLFF_HD inline Dual<S> operator/(const Dual<S> &a, S b) { return {a.v / b, a.d / b}; }

template <typename S> MLFF_HD inline Dual<S> exp(const Dual<S> &a)
{
  S e = std::exp(a.v);
  return {e, e * a.d};
}
template <typename S> MLFF_HD inline Dual<S> sqrt(const Dual<S> &a)
{
  S s = std::sqrt(a.v);
  return {s, a.d / (S(2) * s)};
}
template <typename S> MLFF_HD inline Dual<S> cos(const Dual<S> &a) { return {std::cos(a.v), -std::sin(a.v) * a.d}; }
template <typename S> MLFF_HD inline Dual<S> sin(const Dual<S> &a) { return {std::sin(a.v), std::cos(a.v) * a.d}; }
template <typename S> MLFF_HD inline Dual<S> pow(const Dual<S> &a, S p)
{
  S q = std::pow(a.v, p - S(1));
  return {q * a.v, p * q * a.d};
}

// x^n for an integer n ≥ 0 by squaring: exact at x = 0 and for dual numbers (the kernels'
// integer exponents ζ and γ, where pow would differentiate badly at the base 0).
template <typename T> MLFF_HD inline T ipow(T x, int n)
{
  T r(1);
  while (n > 0) {
    if (n & 1) r = r * x;
    x = x * x;
    n >>= 1;
  }
  return r;
}

// The value part, for comparisons (cutoff tests) in templated code.
template <typename S> MLFF_HD inline S value(S x) { return x; }
template <typename S> MLFF_HD inline S value(const Dual<S> &x) { return x.v; }

}    // namespace mlff

#endif
