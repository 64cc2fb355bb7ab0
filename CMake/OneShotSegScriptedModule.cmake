# oneshotseg_add_scripted_module(<name>): builds the scripted module in the current folder the same way for every
# module of the extension: <name>.py, every .py of <name>Lib/ and <name>Widgets/, every file under Resources/ and the
# icons beside the Lib's effect files, with Slicer's generic tests and the module's own self-test as a ctest.
# Globbed (CONFIGURE_DEPENDS), like the engine package in the top-level CMakeLists.txt, so a new file needs no edit
# here; Testing/static/test_extension_metadata.py runs CMake on it to check what each module ships.
macro(oneshotseg_add_scripted_module MODULE_NAME)
  file(GLOB_RECURSE MODULE_PYTHON_SCRIPTS
    RELATIVE ${CMAKE_CURRENT_SOURCE_DIR}
    CONFIGURE_DEPENDS
    ${CMAKE_CURRENT_SOURCE_DIR}/${MODULE_NAME}Lib/*.py
    ${CMAKE_CURRENT_SOURCE_DIR}/${MODULE_NAME}Widgets/*.py
    )
  list(INSERT MODULE_PYTHON_SCRIPTS 0 ${MODULE_NAME}.py)
  file(GLOB_RECURSE MODULE_PYTHON_RESOURCES
    RELATIVE ${CMAKE_CURRENT_SOURCE_DIR}
    CONFIGURE_DEPENDS
    ${CMAKE_CURRENT_SOURCE_DIR}/Resources/*
    ${CMAKE_CURRENT_SOURCE_DIR}/${MODULE_NAME}Lib/*.png
    )
  slicerMacroBuildScriptedModule(
    NAME ${MODULE_NAME}
    SCRIPTS ${MODULE_PYTHON_SCRIPTS}
    RESOURCES ${MODULE_PYTHON_RESOURCES}
    WITH_GENERIC_TESTS
    )
  if(BUILD_TESTING)
    slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)
  endif()
endmacro()
