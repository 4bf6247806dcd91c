// Device selection helpers shared by the pair style and exposed to Python for tests.

#include "mlff/ops.h"

namespace mlff {

int64_t select_device_index(int64_t node_local_rank, int64_t device_count)
{
  if (device_count <= 0) return -1;
  if (node_local_rank < 0) node_local_rank = 0;
  return node_local_rank % device_count;
}

}    // namespace mlff
