# Periodic fcc Cu with pair_style mlff: velocities at ${temp} K, NPT at ${temp} K and
# ${press} bar (Nose-Hoover), any number of MPI ranks. See deploy/README.md.
#
#   lmp -in in.cu -var model model.pt                                   # 1 rank
#   bash ../mpirun.sh -n 4 -- -in in.cu -var model model.pt -var ncells 12
#
# Variables (-var NAME VALUE): model (deployed Cu model, required), ncells (fcc cells per
# edge, 4*ncells^3 atoms; default 10 -> 4000), mode ("" = automatic, halo, redundant),
# nsteps (1000), temp (600 K), press (0 bar), seed, thermo_every (100),
# dump_every (0 = no dump; else per-atom energy and virial every N steps).
variable model        index model.pt
variable ncells       index 10
variable mode         index ""
variable nsteps       index 1000
variable temp         index 600.0
variable press        index 0.0
variable seed         index 4928459
variable thermo_every index 100
variable dump_every   index 0

units           metal
atom_style      atomic
boundary        p p p
lattice         fcc 3.615
region          box block 0 ${ncells} 0 ${ncells} 0 ${ncells}
create_box      1 box
create_atoms    1 box
mass            1 63.546

pair_style      mlff ${mode}
pair_coeff      * * ${model} Cu

neighbor        1.0 bin
neigh_modify    every 1 delay 0 check yes

velocity        all create ${temp} ${seed} mom yes rot no dist gaussian loop geom
fix             md all npt temp ${temp} ${temp} 0.1 iso ${press} ${press} 1.0
timestep        0.002

compute         pe all pe/atom
compute         st all stress/atom NULL virial
if "${dump_every} > 0" then &
  "dump atoms all custom ${dump_every} cu.dump id x y z c_pe c_st[1] c_st[2] c_st[3] c_st[4] c_st[5] c_st[6]"

thermo          ${thermo_every}
thermo_style    custom step time temp pe ke etotal press vol
thermo_modify   norm no
run             ${nsteps}
