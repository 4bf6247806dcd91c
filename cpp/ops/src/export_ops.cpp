// Operators for AOTInductor packages (python/mlff/aoti.py): each kernel of the models'
// inference path as a pair of plain operators, the forward and its first backward, so that
// tracing (make_fx, torch.export) records calls to them instead of running them, and the
// compiled package calls them by name (in LAMMPS too, through this library).
//
//   radial_table_export(r, table, r_max) -> y [U, F]
//   radial_table_export_backward(grad, r, table, r_max) -> dL/dr [U]
//   symmetry_functions_export(edge_vec, centre, neighbour_species, n_atoms, n_species, radial, angular,
//       r_c, cutoff, gamma) -> G [n_atoms, F]
//   symmetry_functions_export_backward(grad, edge_vec, ...same...) -> dL/d(edge_vec) [E, 3]
//   tp_conv_export(h, sh, weight, centre, neighbour, n_nodes, paths, coeff_index, coeff, dim_out) -> [n_nodes, dim_out]
//   tp_conv_export_backward(grad, h, sh, weight, centre, neighbour, n_nodes, paths, coeff_index, coeff)
//       -> (dL/dh, dL/dsh, dL/dweight)
//   tp_uvw_export(h, sh, weight, neighbour, group, paths, coeff_index, coeff, dim_out) -> [E, dim_out]
//   tp_uvw_export_backward(grad, h, sh, weight, neighbour, group, paths, coeff_index, coeff, dim_out)
//       -> (dL/dh, dL/dsh, dL/dweight)
//   schnet_filter_export(r, centres, gamma, r_max, w1, b1, w2, b2) -> (W [U, F], dW/dr [U, F])
//       (its backward, Σ_f ∂L/∂W_f dW_f/dr, is traced as plain operations)
//   edge_conv_export(p, q, ip, iq, key, n_out) -> out [n_out, F], out[key_k] += p[ip_k] ∘ q[iq_k]
//       (SchNet's cfconv; its backward is two more calls with the index roles swapped)
//
// Sizes are SymInt (dynamic atom counts in an exported program). Only CPU kernels are
// registered here; their shapes (fake kernels) and the forward ops' autograd (the backward
// op) are registered from Python (python/mlff/ops/export.py), where tracing happens.  The
// TorchScript models keep the autograd-aware operators of the other files.
#include "mlff/ops.h"

#include <torch/library.h>

#include <tuple>
#include <vector>

namespace mlff {
at::Tensor radial_table_forward_raw(const at::Tensor &r, const at::Tensor &table, double r_max);
at::Tensor radial_table_backward_raw(const at::Tensor &grad, const at::Tensor &r, const at::Tensor &table,
                                     double r_max);
at::Tensor symmetry_functions_forward_raw(const at::Tensor &edge_vec, const at::Tensor &centre,
                                          const at::Tensor &neighbour_species, int64_t n_atoms, int64_t n_species,
                                          const at::Tensor &radial, const at::Tensor &angular, double r_c,
                                          int64_t cutoff, double gamma);
at::Tensor symmetry_functions_backward_raw(const at::Tensor &grad, const at::Tensor &edge_vec,
                                           const at::Tensor &centre, const at::Tensor &neighbour_species,
                                           int64_t n_atoms, int64_t n_species, const at::Tensor &radial,
                                           const at::Tensor &angular, double r_c, int64_t cutoff, double gamma);
at::Tensor tp_conv_forward_raw(const at::Tensor &h, const at::Tensor &sh, const at::Tensor &weight,
                               const at::Tensor &centre, const at::Tensor &neighbour, int64_t n_nodes,
                               const at::Tensor &paths, const at::Tensor &coeff_index, const at::Tensor &coeff);
std::vector<at::Tensor> tp_conv_backward_raw(const at::Tensor &grad, const at::Tensor &h, const at::Tensor &sh,
                                             const at::Tensor &weight, const at::Tensor &centre,
                                             const at::Tensor &neighbour, int64_t n_nodes, const at::Tensor &paths,
                                             const at::Tensor &coeff_index, const at::Tensor &coeff);
std::tuple<at::Tensor, at::Tensor> schnet_filter_export_raw(const at::Tensor &r, const at::Tensor &centres,
                                                            double gamma, double r_max, const at::Tensor &w1,
                                                            const at::Tensor &b1, const at::Tensor &w2,
                                                            const at::Tensor &b2);
at::Tensor edge_product_scatter_raw(const at::Tensor &p, const at::Tensor &q, const at::Tensor &ip,
                                    const at::Tensor &iq, const at::Tensor &key, int64_t n_out);
at::Tensor tp_uvw_forward_raw(const at::Tensor &h, const at::Tensor &sh, const at::Tensor &weight,
                              const at::Tensor &neighbour, const at::Tensor &group, const at::Tensor &paths,
                              const at::Tensor &coeff_index, const at::Tensor &coeff, int64_t dim_out);
std::vector<at::Tensor> tp_uvw_backward_raw(const at::Tensor &grad, const at::Tensor &h, const at::Tensor &sh,
                                            const at::Tensor &weight, const at::Tensor &neighbour,
                                            const at::Tensor &group, const at::Tensor &paths,
                                            const at::Tensor &coeff_index, const at::Tensor &coeff, int64_t dim_out);
}    // namespace mlff

namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> tp_uvw_export_backward(
    const at::Tensor &grad, const at::Tensor &h, const at::Tensor &sh, const at::Tensor &weight,
    const at::Tensor &neighbour, const at::Tensor &group, const at::Tensor &paths, const at::Tensor &coeff_index,
    const at::Tensor &coeff, int64_t dim_out)
{
  auto g = mlff::tp_uvw_backward_raw(grad, h, sh, weight, neighbour, group, paths, coeff_index, coeff, dim_out);
  return {g[0], g[1], g[2]};
}


at::Tensor tp_conv_export(const at::Tensor &h, const at::Tensor &sh, const at::Tensor &weight,
                          const at::Tensor &centre, const at::Tensor &neighbour, int64_t n_nodes,
                          const at::Tensor &paths, const at::Tensor &coeff_index, const at::Tensor &coeff,
                          int64_t dim_out)
{
  at::Tensor out = mlff::tp_conv_forward_raw(h, sh, weight, centre, neighbour, n_nodes, paths, coeff_index, coeff);
  TORCH_CHECK(out.size(1) == dim_out, "mlff::tp_conv_export: the paths give ", out.size(1),
              " output columns, but dim_out is ", dim_out);
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> tp_conv_export_backward(
    const at::Tensor &grad, const at::Tensor &h, const at::Tensor &sh, const at::Tensor &weight,
    const at::Tensor &centre, const at::Tensor &neighbour, int64_t n_nodes, const at::Tensor &paths,
    const at::Tensor &coeff_index, const at::Tensor &coeff)
{
  auto g = mlff::tp_conv_backward_raw(grad, h, sh, weight, centre, neighbour, n_nodes, paths, coeff_index, coeff);
  return {g[0], g[1], g[2]};
}

}    // namespace

TORCH_LIBRARY_FRAGMENT(mlff, m)
{
  m.def("radial_table_export(Tensor r, Tensor table, float r_max) -> Tensor");
  m.def("radial_table_export_backward(Tensor grad, Tensor r, Tensor table, float r_max) -> Tensor");
  m.def("symmetry_functions_export(Tensor edge_vec, Tensor centre, Tensor neighbour_species, SymInt n_atoms, "
        "int n_species, Tensor radial, Tensor angular, float r_c, int cutoff, float gamma) -> Tensor");
  m.def("symmetry_functions_export_backward(Tensor grad, Tensor edge_vec, Tensor centre, Tensor neighbour_species, "
        "SymInt n_atoms, int n_species, Tensor radial, Tensor angular, float r_c, int cutoff, float gamma) -> Tensor");
  m.def("tp_conv_export(Tensor h, Tensor sh, Tensor weight, Tensor centre, Tensor neighbour, SymInt n_nodes, "
        "Tensor paths, Tensor coeff_index, Tensor coeff, int dim_out) -> Tensor");
  m.def("tp_conv_export_backward(Tensor grad, Tensor h, Tensor sh, Tensor weight, Tensor centre, Tensor neighbour, "
        "SymInt n_nodes, Tensor paths, Tensor coeff_index, Tensor coeff) -> (Tensor, Tensor, Tensor)");
  m.def("tp_uvw_export(Tensor h, Tensor sh, Tensor weight, Tensor neighbour, Tensor group, Tensor paths, "
        "Tensor coeff_index, Tensor coeff, int dim_out) -> Tensor");
  m.def("tp_uvw_export_backward(Tensor grad, Tensor h, Tensor sh, Tensor weight, Tensor neighbour, Tensor group, "
        "Tensor paths, Tensor coeff_index, Tensor coeff, int dim_out) -> (Tensor, Tensor, Tensor)");
  m.def("schnet_filter_export(Tensor r, Tensor centres, float gamma, float r_max, Tensor w1, Tensor b1, Tensor w2, "
        "Tensor b2) -> (Tensor, Tensor)");
  m.def("edge_conv_export(Tensor p, Tensor q, Tensor ip, Tensor iq, Tensor key, SymInt n_out) -> Tensor");
}

TORCH_LIBRARY_IMPL(mlff, CPU, m)
{
  m.impl("radial_table_export", &mlff::radial_table_forward_raw);
  m.impl("radial_table_export_backward", &mlff::radial_table_backward_raw);
  m.impl("symmetry_functions_export", &mlff::symmetry_functions_forward_raw);
  m.impl("symmetry_functions_export_backward", &mlff::symmetry_functions_backward_raw);
  m.impl("tp_conv_export", &tp_conv_export);
  m.impl("tp_conv_export_backward", &tp_conv_export_backward);
  m.impl("tp_uvw_export", &mlff::tp_uvw_forward_raw);
  m.impl("tp_uvw_export_backward", &tp_uvw_export_backward);
  m.impl("schnet_filter_export", &mlff::schnet_filter_export_raw);
  m.impl("edge_conv_export", &mlff::edge_product_scatter_raw);
}
