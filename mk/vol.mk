# mk/vol.mk: targets of the volumes module (engine/io, prep, metrics, phantom).
# nifticlib's headers include "znzlib.h" unqualified: engine/io needs /usr/include/nifti.
$(BUILD)/obj/engine/io/%.o: CFLAGS += -I/usr/include/nifti
