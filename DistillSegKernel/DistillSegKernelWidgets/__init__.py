"""The Qt parts every module of the extension shares: the module widget base (``engineModuleWidget``) and the
Segment Editor effect base (``modelSegmentationEffect``). The Libs stay Qt-free."""
