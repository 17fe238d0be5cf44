# mk/dicom.mk: DICOM series in and Segmentation objects out (engine/io/dicom_*, docs/dicom.md).
# The C++ units (DCMTK is a C++ library) are compiled here and join libmkdengine.a; they sit
# behind the C header engine/include/dicom.h. Zip archives are read with libarchive.
CXX        ?= g++
DICOM_CXX_SRC := $(sort $(wildcard engine/io/*.cpp))
DICOM_CXX_OBJ := $(patsubst %.cpp,$(BUILD)/obj/%.o,$(DICOM_CXX_SRC))
DICOM_LIBS    := -ldcmseg -ldcmfg -ldcmiod -ldcmjpls -ldcmtkcharls -ldcmjpeg -lijg8 -lijg12 -lijg16 \
                 -ldcmimage -ldcmimgle -ldcmdata -loflog -lofstd -larchive -lstdc++
CXXFLAGS_DICOM = -std=c++17 -Wall -Wextra -Werror -g $(OPT) -march=x86-64-v3 -Iengine/include -Iengine/io \
                 $(if $(filter 1,$(SANITIZE)),$(DICOM_SAN))
DICOM_SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer

$(BUILD)/obj/engine/io/%.o: engine/io/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_DICOM) -MMD -MP -c $< -o $@

$(ENGINE_A): $(DICOM_CXX_OBJ)
LIBS += $(DICOM_LIBS)
